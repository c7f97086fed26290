"""The rules every engine shares (pmg_dali.rules): frame tables and their packed rows read back by column
name against hand-built programs with known numbers, the half-open box rule, the cutmix / Mixup layering
and the one table of padding codes."""
import dataclasses

import pytest
import torch

from pmg_dali.config import PADDING_MODES
from pmg_dali.program import MotionProgram
from pmg_dali.rules import (COLUMNS, INDEX_COLUMNS, MIX_MODES, NUM_PARAMS, PADDING_CODES, box_mask, box_pixels,
                            column, frame_tables, identity_color, in_box, mix_layers, paste_layer)

T = 2


def affine(a, b, c, d, e, f):
    return [[a, b, c], [d, e, f], [0.0, 0.0, 1.0]]


# clip 0: scale 2 then shift (3, -1); clip 1: shift (-2, 5). Frame 1 of clip 0 scales by 4.
HOMOGRAPHY = torch.tensor([[affine(2, 0, 3, 0, 2, -1), affine(4, 0, 0, 0, 4, 0)],
                           [affine(1, 0, -2, 0, 1, 5), affine(1, 0, 0, 0, 1, 0)]])
INVERSE = torch.tensor([[affine(0.5, 0, -1.5, 0, 0.5, 0.5), affine(0.25, 0, 0, 0, 0.25, 0)],
                        [affine(1, 0, 2, 0, 1, -5), affine(1, 0, 0, 0, 1, 0)]], dtype=torch.float64)
GREY = torch.tensor([[0.5, 0.5, 0.0, 0.1], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def program(paste=False, mix=None):
    """Two clips of two frames; frame 1 of clip 1 has a colour map, the others the identity."""
    color = torch.eye(3, 4).repeat(2, T, 1, 1)
    color[1, 1] = GREY
    fields = dict(homography=HOMOGRAPHY.clone(), color=color, transform=torch.tensor([4, 6]))
    if paste:
        fields.update(paste_index=torch.tensor([1, 0]),
                      paste_homography=torch.tensor([[affine(1, 0, 1, 0, 1, 0)] * T, [affine(2, 0, 0, 0, 2, 0)] * T]),
                      paste_box=torch.tensor([[[1.0, 2.0, 4.0, 5.0], [1.5, 2.0, 4.5, 5.0]],
                                              [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]))
    if mix is not None:
        fields.update(mix_index=torch.tensor([1, 0]))
        if mix == "frame":
            fields["mix_lambda"] = torch.tensor([[0.25, 0.75], [0.5, 1.0]])
        else:
            fields["mix_lambda"] = torch.tensor([0.25, 0.75])
        if mix == "box":
            fields["mix_box"] = torch.tensor([[0.0, 1.0, 2.5, 3.0], [2.0, 2.0, 6.0, 6.0]])
    return MotionProgram(**fields)


def test_tables_of_a_hand_built_program():
    tables = frame_tables(program(paste=True, mix="box"))
    assert tables.inverse.dtype == torch.float64
    torch.testing.assert_close(tables.inverse, INVERSE, rtol=0, atol=1e-15)
    assert torch.equal(tables.inverse, torch.linalg.inv(HOMOGRAPHY.double()))
    assert tables.color.dtype == torch.float32 and torch.equal(tables.color[1, 1], GREY)
    assert tables.plain_color.tolist() == [[True, True], [True, False]]
    assert tables.paste_index.tolist() == [1, 0]
    assert tables.paste_inverse.dtype == torch.float64
    assert tables.paste_inverse[0, 1].tolist() == affine(1, 0, -1, 0, 1, 0)
    assert tables.paste_inverse[1, 0].tolist() == affine(0.5, 0, 0, 0, 0.5, 0)
    assert tables.paste_box[0, 1].tolist() == [1.5, 2.0, 4.5, 5.0]
    assert tables.mix_index.tolist() == [1, 0]
    assert tables.mix_lambda.tolist() == [[0.25, 0.25], [0.75, 0.75]]        # one lambda per clip, over frames
    assert tables.mix_box.tolist() == [[0.0, 1.0, 2.5, 3.0], [2.0, 2.0, 6.0, 6.0]]
    assert tables.lambda_per_frame is False and tables.mix_mode == "box"


@pytest.mark.parametrize("mix", [None, "clip", "frame", "box"])
def test_mix_mode(mix):
    tables = frame_tables(program(mix=mix))
    assert tables.mix_mode == mix and mix in MIX_MODES
    assert tables.lambda_per_frame is (mix == "frame")
    if mix == "frame":
        assert tables.mix_lambda.tolist() == [[0.25, 0.75], [0.5, 1.0]]
    if mix is None:
        assert tables.mix_index is None and tables.mix_lambda is None and tables.mix_box is None
    assert tables.paste_index is None and tables.paste_inverse is None and tables.paste_box is None


def test_packed_columns_read_back_by_name():
    tables = frame_tables(program(paste=True, mix="box"))
    params, index = tables.packed()
    assert params.shape == (2, T, NUM_PARAMS) and params.dtype == torch.float32
    assert index.shape == (2, len(INDEX_COLUMNS)) and index.dtype == torch.int32
    assert params[0, 0, column("inverse")].tolist() == [0.5, 0, -1.5, 0, 0.5, 0.5, 0, 0, 1]
    assert params[1, 1, column("color")].tolist() == GREY.flatten().tolist()
    assert params[0, 1, column("paste_inverse")].tolist() == [1, 0, -1, 0, 1, 0, 0, 0, 1]
    assert params[0, 1, column("paste_box")].tolist() == [1.5, 2.0, 4.5, 5.0]
    assert params[1, 0, column("mix_lambda")].tolist() == [0.75]
    assert params[1, 1, column("mix_box")].tolist() == [2.0, 2.0, 6.0, 6.0]   # the clip's box on every frame
    assert params[..., column("plain_color")][..., 0].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert index[:, INDEX_COLUMNS.index("paste_index")].tolist() == [1, 0]
    assert index[:, INDEX_COLUMNS.index("mix_index")].tolist() == [1, 0]


def test_packed_leaves_absent_parts_zero():
    params, index = frame_tables(program(mix="frame")).packed()
    for name in ("paste_inverse", "paste_box", "mix_box"):
        assert not params[..., column(name)].any(), name
    assert params[..., column("mix_lambda")][..., 0].tolist() == [[0.25, 0.75], [0.5, 1.0]]
    assert index[:, INDEX_COLUMNS.index("paste_index")].tolist() == [0, 0]
    params, index = frame_tables(program()).packed()
    assert not params[..., column("mix_lambda")].any() and not index.any()


def test_columns_tile_the_row():
    # the packed row's layout, spelled out: each column after the last, 40 in all
    assert COLUMNS == {"inverse": (0, 9), "color": (9, 12), "paste_inverse": (21, 9), "paste_box": (30, 4),
                       "mix_lambda": (34, 1), "mix_box": (35, 4), "plain_color": (39, 1)}
    assert NUM_PARAMS == 40 and column("color") == slice(9, 21)


def test_padding_codes_are_the_config_list():
    assert list(PADDING_CODES) == list(PADDING_MODES)                      # every mode has its code
    assert PADDING_CODES == {"zeros": 0, "border": 1, "reflection": 2}      # what compiled kernels were built with


def test_identity_color():
    color = torch.eye(3, 4).repeat(3, 1, 1)
    color[1, 0, 3] = 1e-7
    color[2] = GREY
    assert identity_color(color).tolist() == [True, False, False]


def test_box_rule_is_half_open():
    box = torch.tensor([1.0, 0.5, 3.0, 2.0])                                # x in {1, 2}, y in {1}
    mask = box_mask(box, (4, 5))
    expect = torch.zeros(4, 5, dtype=torch.bool)
    expect[1, 1:3] = True
    assert torch.equal(mask, expect)
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    assert torch.equal(in_box(xs, ys, box), mask)
    # edges: x0 and y0 are inside, x1 and y1 are not
    assert in_box(torch.tensor([1.0, 3.0, 2.999]), torch.tensor([0.5, 1.0, 1.999]), box).tolist() == [True, False, True]
    assert box_pixels(torch.tensor([0.5, -0.5, 3.0, 2.0])).tolist() == [1.0, -0.0, 3.0, 2.0]
    # batched boxes, empty boxes
    boxes = torch.stack([box, torch.zeros(4), torch.tensor([-1.0, -1.0, 9.0, 9.0])])
    masks = box_mask(boxes, (4, 5))
    assert masks.shape == (3, 4, 5) and torch.equal(masks[0], mask)
    assert not masks[1].any() and masks[2].all()


def test_paste_layer_and_mix_layers():
    frames = torch.zeros(2, 1, T, 3, 4)
    patches = torch.ones(2, 1, T, 3, 4)
    box = torch.tensor([[[0.0, 0.0, 2.0, 1.0], [2.0, 1.0, 4.0, 3.0]], [[0.0, 0.0, 0.0, 0.0]] * T])
    out = paste_layer(frames, patches, box)
    assert out[0, 0, 0].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert out[0, 0, 1].tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert not out[1].any() and not frames.any()
    clips = torch.full((2, 1, T, 3, 4), 1.0)
    partner = torch.full((2, 1, T, 3, 4), 3.0)
    mixed = mix_layers(clips, partner, torch.tensor([[0.25, 1.0], [0.5, 0.0]]), None)
    assert mixed[:, 0, :, 0, 0].tolist() == [[2.5, 1.0], [2.0, 3.0]]           # lambda weighs the clip itself
    mixed = mix_layers(clips, partner, torch.tensor([0.25, 0.75]), torch.tensor([[1.0, 1.0, 2.0, 9.0], [0.0] * 4]))
    assert mixed[0, 0, 1].tolist() == [[1, 1, 1, 1], [1, 3, 1, 1], [1, 3, 1, 1]]   # the box on every frame
    assert torch.equal(mixed[:, :, 0], mixed[:, :, 1]) and torch.equal(mixed[1], clips[1])


def test_inverse_is_of_the_matrix_as_given():
    prog = program(paste=True, mix="frame")
    tables = frame_tables(prog)
    assert tables.inverse.device == prog.device
    scaled = dataclasses.replace(prog, homography=prog.homography * 2)        # the same maps, scaled matrices
    torch.testing.assert_close(frame_tables(scaled).inverse, tables.inverse / 2, rtol=0, atol=0)
