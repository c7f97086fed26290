"""The engine table (:mod:`pmg_dali.engines`): what reads it, how ``renderer="auto"`` chooses from it, and
the package's import graph (no cycles: the table is what lets the canary and the engines stay apart)."""
import ast
from pathlib import Path

import pytest
import torch

import pmg_dali
from pmg_dali import PMGConfig, PseudoMotion, engines
from pmg_dali.cpu_render import render_cpu
from pmg_dali.render import render

PACKAGE = Path(pmg_dali.__file__).parent
HAS_TRITON = engines.engine("fused").installed()


def package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it runs, anywhere in its source (functions
    included; ``if TYPE_CHECKING:`` blocks left out)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        deps, tree = set(), ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:       # annotations only: not imported when the code runs
                continue
            if isinstance(node, ast.ImportFrom):
                absolute = (node.module or "").split(".")
                inside = node.level == 1 or absolute[0] == "pmg_dali"
                tail = absolute[1:] if absolute[0] == "pmg_dali" else absolute if node.level else []
                if inside:
                    deps |= {tail[0]} if tail and tail[0] else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pmg_dali.")}
        graph[path.stem] = (deps & modules) - {path.stem, "__init__"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path (first module repeated last), or None."""
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_package_has_no_import_cycle():
    graph = package_imports()
    assert {"engines", "engine_check", "module", "render", "program"} <= set(graph)
    assert graph["engine_check"] >= {"engines"} and "dali" not in graph["engine_check"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_engines_are_listed_once():
    """Every module names engines through the table: no other tuple of engine names in the package."""
    names = set(engines.NAMES)
    for path in PACKAGE.glob("*.py"):
        if path.stem == "engines":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                assert len(values & names) < 2 or values - names - {"auto"}, (
                    f"{path.name}:{node.lineno} lists engines {sorted(values & names)}: read pmg_dali.engines")


def test_table_rows():
    assert engines.RENDERERS == ("auto", "reference", "cpu", "fused", "dali")
    for row in engines.ENGINES:
        assert row.tolerance.canary_levels >= row.tolerance.uint8_levels
        if row.installed():
            assert callable(row.function())
        if row.augment is None:
            with pytest.raises(NotImplementedError, match=f"the '{row.name}' engine has no 'augment'"):
                row.function("augment")
    assert [row.name for row in engines.ENGINES if row.has("augment")] == ["reference", "fused"]
    assert all(row.has("render") for row in engines.ENGINES)
    assert engines.engine("cpu").function() is render_cpu and engines.engine("reference").function() is render
    with pytest.raises(ValueError, match=r"`engine` must be one of \('reference', 'cpu', 'fused', 'dali'\), "
                                         r"but got 'x'"):
        engines.engine("x")
    with pytest.raises(ValueError, match="`op` must be one of"):
        engines.engine("cpu").function("draw")
    with pytest.raises(ValueError, match="`op` must be one of"):
        engines.engine("cpu").has("draw")


def test_availability(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert engines.engine("cpu").unavailable(cuda) == "needs a cpu device, not cuda"
    assert "needs a CUDA device (on the CPU through TRITON_INTERPRET=1)" in engines.engine("fused").unavailable(cpu)
    dali = engines.engine("dali")
    assert dali.unavailable(cpu, PMGConfig(recursion="iterative")) == "needs recursion in ('composed',)"
    assert dali.renders(PMGConfig()) and not dali.renders(PMGConfig(recursion="iterative"))
    with pytest.raises(TypeError, match="`config` must be a PMGConfig, but got str"):
        engines.engine("cpu").unavailable(cpu, "composed")
    with pytest.raises(TypeError, match="`config` must be a PMGConfig, but got NoneType"):
        dali.check_recursion(None)
    missing = engines.Engine("x", "pmg_dali.render:render", None, ("cpu",), engines.Tolerance(0, 0, 0),
                             requires="no_such_package.sub")
    assert not missing.installed() and missing.unavailable(cpu) == "needs no_such_package.sub, which is not installed"
    assert engines.engine("cpu").unavailable("cuda:1") == "needs a cpu device, not cuda"    # any device torch names
    with pytest.raises(ValueError, match="`device` must name a device such as 'cpu', 'cuda' or 'cuda:1', "
                                         "but got 'cdua'"):
        engines.engine("cpu").unavailable("cdua")
    with pytest.raises(TypeError, match="`device` must be a torch.device, a str or an int, but got float"):
        engines.engine("fused").runs_on(3.5)


def test_auto_order():
    assert engines.auto_engine(torch.device("cpu"), (48, 48)) == "cpu"
    assert engines.auto_engine("cpu", 48) == "cpu"                                       # an int is square
    assert engines.auto_engine(torch.device("cpu"), (47, 48)) == "reference"
    assert engines.auto_engine(torch.device("cpu"), (64, 64), "augment") == "reference"   # cpu: images only
    assert engines.auto_engine(torch.device("cuda"), (64, 64)) == ("fused" if HAS_TRITON else "reference")
    assert engines.auto_engine(torch.device("cuda"), (8, 8), "augment") == ("fused" if HAS_TRITON else "reference")
    for size, expect in [(48, True), ((47, 48), False), (64, True)]:       # what PseudoMotion("auto") renders with
        assert (PseudoMotion(PMGConfig(size=size)).render_function(torch.device("cpu")) is render_cpu) == expect
    with pytest.raises(ValueError, match="`device` must name a device .* but got 'gpu'"):
        engines.auto_engine("gpu", (48, 48))
    with pytest.raises(TypeError, match=r"`size` must be an int or a pair of ints \(H, W\), but got 224.0"):
        engines.auto_engine("cpu", 224.0)


@pytest.mark.parametrize("renderer", engines.RENDERERS)
def test_module_renderer_selection(renderer, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert PseudoMotion(renderer=renderer).config == PMGConfig()   # no config: the default, whichever engine
    cfg = PMGConfig(transforms=("zoom", "affine"), num_frames=3, size=(19, 26))
    gen = PseudoMotion(cfg, renderer=renderer)
    assert f"renderer={renderer!r}" in repr(gen)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 19, 26), dtype=torch.uint8, generator=g)
    program = gen.sample(3, generator=g)
    if renderer not in ("auto", "reference") and not engines.engine(renderer).installed():
        pytest.skip(f"needs {engines.engine(renderer).requires}")
    if renderer == "fused":
        with pytest.raises(RuntimeError, match="`render_fused` needs CUDA images"):
            gen(images, program=program)
        return
    assert (gen.render_function(torch.device("cpu")) is render_cpu) == (renderer == "cpu")
    assert gen.engine("cpu", "augment") == ("reference" if renderer in ("cpu", "dali", "auto") else renderer)
    if renderer in ("auto", "reference"):   # 19 x 26 frames: below the CPU engine's minimum, "auto" is the reference
        assert gen.engine(torch.device("cpu")) == "reference" and gen.render_function(torch.device("cpu")) is render
        return                              # (its clips against render would compare render with itself)
    clips, expect = gen(images, program=program), render(images, program, cfg)
    if renderer == "cpu":                   # no colour matrix in zoom + affine: the reference's arithmetic, bit for bit
        assert torch.equal(clips, expect)
    else:
        tol = engines.engine(gen.engine("cpu")).tolerance
        assert (clips - expect).abs().max() <= tol.atol / min(cfg.std) + 1e-6


def test_renderer_must_be_known():
    with pytest.raises(ValueError, match=r"`config.recursion` must be 'composed' for the 'dali' engine, "
                                         r"but got 'iterative'"):
        PseudoMotion(PMGConfig(recursion="iterative"), renderer="dali")
    with pytest.raises(ValueError, match="`op` must be one of"):
        PseudoMotion(PMGConfig()).engine("cpu", "draw")
    with pytest.raises(ValueError, match=r"`renderer` must be one of \('auto', 'reference', 'cpu', 'fused', 'dali'\), "
                                         r"but got 'numpy'"):
        PseudoMotion(PMGConfig(), renderer="numpy")


@pytest.mark.gpu
def test_module_auto_uses_fused_on_cuda():
    fused = pytest.importorskip("pmg_dali.fused")
    cfg = PMGConfig(transforms=("zoom", "affine"), num_frames=4, size=(37, 29))
    gen = PseudoMotion(cfg)
    assert gen.render_function(torch.device("cuda")) is fused.render_fused
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 37, 29), dtype=torch.uint8, generator=g)
    program = gen.sample(5, generator=g)
    expect = PseudoMotion(cfg, renderer="reference")(images, program=program)
    for where in ("cpu", "cuda"):   # tables built on the host and copied, or built on the GPU
        torch.testing.assert_close(gen(images.cuda(), program=program.to(where)).cpu(), expect, atol=2e-4, rtol=0)
