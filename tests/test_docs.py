"""The documentation builds, its code runs, and a browser shows what the pages promise.

One build per test session (the ``site`` fixture) with the README's command plus ``-E``
(every page read, every notebook and guide executed afresh):
``sphinx-build -E -W --keep-going -j 2 docs docs/_build/html``. Warnings are errors, broken
cross-references included (``nitpicky``), and a code cell that raises, or whose ``assert``
fails, is a warning (``tests/test_docs.py::test_a_failing_cell_fails_the_build`` shows it).

Then Debian's ``chromium`` (headless, no network needed) opens the built pages: the DOM after
the scripts ran must hold MathJax's output, the signature of ``rmsprop`` and the numbers the
guides compute, and no error box. Screenshots go to ``docs/_build/screenshots/``.
"""

from __future__ import annotations

import html
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"
SCREENSHOTS = DOCS / "_build" / "screenshots"
BUILD_TIMEOUT_S = 900

pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
pytestmark = pytest.mark.slow  # every test here builds docs


def _sphinx(*args: str, cwd: pathlib.Path = ROOT, timeout: int = BUILD_TIMEOUT_S):
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    """Builds the docs once for this module; fails with Sphinx's warnings if that fails."""
    done = _sphinx("-E", "-W", "--keep-going", "-j", "2", "docs", str(HTML))
    log = done.stdout + done.stderr
    assert done.returncode == 0, (
        "sphinx-build failed:\n"
        + "\n".join(
            line
            for line in log.splitlines()
            if "WARNING" in line or "ERROR" in line or "Error" in line
        )[-20000:]
    )
    return HTML


def _page(site: pathlib.Path, name: str) -> str:
    return (site / name).read_text()


def _text(markup: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    markup = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


# ---------------------------------------------------------------------------
# The built HTML.

PAGES = [
    "index.html",
    "getting_started.html",
    "update_rule.html",
    "api.html",
    "porting/index.html",
    "porting/pytorch.html",
    "porting/keras.html",
    "porting/tf1.html",
    "porting/gluon.html",
    "porting/d2l.html",
    "porting/tf_keras.html",
    "porting/paddle.html",
    "porting/chainer.html",
    "light_state.html",
    "many_devices.html",
    "checkpointing.html",
    "benchmarks.html",
    "notebooks/index.html",
    *(f"notebooks/{path.stem}.html" for path in sorted((ROOT / "colab").glob("*.ipynb"))),
]


def test_every_page_is_built_without_error_boxes(site):
    for name in PAGES:
        page = _page(site, name)
        assert 'class="system-message"' not in page, name  # docutils' error boxes
        assert 'class="problematic"' not in page, name  # unresolved inline markup
        assert "Traceback" not in page, name  # a cell's error output
        assert "output traceback" not in page, name  # myst-nb's class for error outputs
        assert not re.search(r"\d+/\d+ \[[\d:]+<|it/s\]", page), name  # tqdm's progress bars


def test_no_page_loads_a_script_from_the_network(site):
    for page in site.rglob("*.html"):
        for src in re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page.read_text()):
            assert not re.match(r"(https?:)?//", src), (page, src)
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_getting_started_shows_the_tour(site):
    text = _text(_page(site, "getting_started.html"))
    assert "epoch 20, x1: -0.010599, x2: 0.000000" in text  # the tour's d2l line
    assert "presets.tf1(lr)" in text and "train MSE" in text
    for plot in ("d2l_trace.png", "presets.png", "mlp.png"):
        assert (site / "_images" / plot).stat().st_size > 10_000, plot


def test_api_page_lists_every_public_name(site):
    import optax_rmsprop
    from optax_rmsprop import datasets, interop, presets, quantize, sharding

    page = _page(site, "api.html")
    names = [
        f"optax_rmsprop.{n}"
        for n in optax_rmsprop.__all__
        if n not in ("interop", "presets", "quantize", "sharding")
    ]
    names += [f"optax_rmsprop.presets.{n}" for n in presets.__all__]
    names += [f"optax_rmsprop.quantize.{n}" for n in quantize.__all__ if n != "Int8"]
    names += [f"optax_rmsprop.sharding.{n}" for n in sharding.__all__]
    names += [f"optax_rmsprop.interop.{n}" for n in interop.__all__]
    names += [f"optax_rmsprop.datasets.{n}" for n in datasets.__all__]
    for module in ("presets", "quantize", "sharding", "interop", "datasets"):
        names.append(f"module-optax_rmsprop.{module}")
    for name in names:
        assert f'id="{name}"' in page, name


def test_guides_show_the_numbers_they_computed(site):
    def number(page, pattern):
        (value,) = re.findall(pattern, _text(_page(site, page)))
        return float(value)

    difference = r"max relative difference ([0-9.e+-]+) "
    assert number("porting/pytorch.html", "RMSprop after 100 steps: " + difference) < 1e-5
    assert number("porting/keras.html", "RMSprop after 100 steps: " + difference) < 1e-5
    assert number("porting/gluon.html", "rule after 100 steps: " + difference) < 1e-5
    tf1 = re.findall(r"the TF1 kernel: ([0-9.e+-]+) ", _text(_page(site, "porting/tf1.html")))
    assert len(tf1) == 2 and max(map(float, tf1)) < 1e-5, tf1
    assert "epoch 20, x1: -0.010599, x2: 0.000000" in _text(_page(site, "porting/d2l.html"))
    assert 0.243 <= number("porting/d2l.html", r"median (\d\.\d+)") <= 0.246
    assert number("update_rule.html", r"/ max \|adam\| = ([0-9.e+-]+)") < 1e-5


def test_notebooks_are_rendered_with_their_outputs(site):
    page = _page(site, "notebooks/d2l_rmsprop.html")
    assert "from scratch (float64): epoch 20, x1: -0.010599, x2: 0.000000" in _text(page)
    assert len(re.findall(r"<img[^>]+src=\"[^\"]*\.png\"", page)) >= 4  # its figures
    gifs = re.findall(
        r"<img[^>]+src=\"([^\"]*\.gif)\"", _page(site, "notebooks/animation_1d_2d.html")
    )
    assert len(gifs) == 2, gifs
    for name in PAGES:
        if name.startswith("notebooks/") and not name.endswith("index.html"):
            assert "cell_output" in _page(site, name), name


def test_checkpointing_page_resumes_every_state(site):
    text = _text(_page(site, "checkpointing.html"))
    assert "RMSPropState at step 4" in text and "resumed bit for bit: True" in text
    for name in ("plain", "momentum", "centered + momentum", "8-bit nu + momentum"):
        assert f"{name}: resumed bit for bit" in text, name
    assert "'nu': 'QuantizedArray'" in text
    assert "TypeError:" in text  # a state restored without a target
    assert "resumed on the 2 x 4 mesh bit for bit: True" in text


def test_fashion_mnist_notebooks_say_they_used_the_package_subset(site):
    for name in ("d2l_rmsprop", "flax_nnx_fashion_mnist", "memory"):
        text = _text(_page(site, f"notebooks/{name}.html"))
        assert "Fashion-MNIST, the package's subset: 5000 training and 1000 test images" in text


def test_benchmark_plots_are_included(site):
    page = _page(site, "benchmarks.html")
    for plot in ("step_time.png", "ratios.png", "bandwidth.png"):
        assert f"_images/{plot}" in page, plot
    assert "Step time" in _text(page) and "Light optimizer state" in _text(page)


# ---------------------------------------------------------------------------
# The guides' code can fail the build.


def test_a_failing_cell_fails_the_build(tmp_path):
    """A page like the guides (a MyST notebook) whose assert fails, built with the docs'
    execution settings and ``-W``: the build fails and names the error."""
    settings = {
        name: value
        for name, value in _conf_values().items()
        if name.startswith("nb_") or name in ("source_suffix", "nitpicky")
    }
    (tmp_path / "conf.py").write_text(
        'extensions = ["myst_nb"]\n'
        + "".join(f"{name} = {value!r}\n" for name, value in settings.items())
    )
    (tmp_path / "index.md").write_text(
        textwrap.dedent(
            """\
            ---
            file_format: mystnb
            kernelspec:
              name: python3
              display_name: Python 3
              language: python
            ---

            # A guide

            ```{code-cell} ipython3
            import optax_rmsprop
            assert optax_rmsprop.rmsprop(0.1) is None, "this guide's claim is wrong"
            ```
            """
        )
    )
    done = _sphinx("-W", "--keep-going", "-q", str(tmp_path), str(tmp_path / "_build"), timeout=300)
    assert done.returncode != 0
    assert "this guide's claim is wrong" in done.stdout + done.stderr


def test_a_rebuild_executes_a_page_that_failed_before(tmp_path):
    """Built with the docs' extensions for re-reading and execution: a page that failed for
    want of a file fails the first build; once the file exists, the same command, without
    ``-E`` and with the page unchanged, executes it again and succeeds."""
    settings = {
        name: value
        for name, value in _conf_values().items()
        if name.startswith("nb_") or name in ("source_suffix", "nitpicky")
    }
    source = tmp_path / "source"  # myst-nb writes beside the output folder: keep it apart
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        'extensions = ["myst_nb", "reread_every_page"]\n'
        + "".join(f"{name} = {value!r}\n" for name, value in settings.items())
    )
    data = tmp_path / "data.txt"
    (source / "index.md").write_text(
        textwrap.dedent(
            f"""\
            ---
            file_format: mystnb
            kernelspec:
              name: python3
              display_name: Python 3
              language: python
            ---

            # A guide

            ```{{code-cell}} ipython3
            import pathlib
            print("the data says", pathlib.Path({str(data)!r}).read_text())
            ```
            """
        )
    )
    build = ("-W", "--keep-going", "-q", str(source), str(tmp_path / "out" / "html"))
    first = _sphinx(*build, timeout=300)
    assert first.returncode != 0 and "FileNotFoundError" in first.stdout + first.stderr
    data.write_text("hello")
    second = _sphinx(*build, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    page = (tmp_path / "out" / "html" / "index.html").read_text()
    assert "the data says hello" in page and "Traceback" not in page


def _conf_values() -> dict:
    """The settings docs/conf.py defines (runs it as Sphinx would, without building)."""
    import runpy

    saved = dict(os.environ), list(sys.path)
    try:
        return {k: v for k, v in runpy.run_path(str(DOCS / "conf.py")).items() if k.isidentifier()}
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        sys.path[:] = saved[1]


# ---------------------------------------------------------------------------
# What a reader sees, in a real browser.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="no chromium (apt-get install -y chromium); CI requires it",
)


def _chromium(tmp_path: pathlib.Path, *args: str) -> str:
    assert CHROMIUM, "chromium is not installed: apt-get install -y chromium"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=10000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _dom(tmp_path, page: pathlib.Path) -> str:
    return _chromium(tmp_path, "--dump-dom", page.as_uri())


def _screenshot(tmp_path, page: pathlib.Path, name: str) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{name}.png"
    out.unlink(missing_ok=True)
    _chromium(tmp_path, f"--screenshot={out}", "--window-size=1280,2000", page.as_uri())
    assert out.stat().st_size > 20_000, out  # a rendered page, not a blank one
    return out


def _assert_maths_rendered(dom: str, at_least: int) -> None:
    # MathJax 3 replaces each \( \) or \[ \] with an <mjx-container> (CommonHTML output);
    # an error in the TeX shows as <mjx-merror>.
    assert dom.count("<mjx-container") >= at_least, dom.count("<mjx-container")
    assert "<mjx-merror" not in dom
    assert not re.search(
        r"\\\[|\\\(",
        _text(re.sub(r"<mjx-assistive-mml.*?</mjx-assistive-mml>", "", dom, flags=re.S)),
    )


def _assert_no_error_boxes(dom: str) -> None:
    assert 'class="system-message"' not in dom
    assert "Traceback" not in _text(dom)


# Run in the page once MathJax has typeset it: the size of each display formula's box against
# what it holds, for the formula and each ancestor that could scroll or clip it, and the height
# of rmsprop's signature in lines. Written into the DOM, which --dump-dom returns.
MEASURE = """<script>
window.addEventListener("load", function wait() {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return setTimeout(wait, 50);
  MathJax.startup.promise.then(() => {
    const boxes = [];
    for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
      for (let e = c; e && e !== document.body; e = e.parentElement) {
        const css = getComputedStyle(e);
        if (e === c || css.overflowX !== "visible" || css.overflowY !== "visible")
          boxes.push({formula: c.textContent.slice(0, 40), element: e.tagName + "." + e.className,
                      scrollWidth: e.scrollWidth, clientWidth: e.clientWidth,
                      scrollHeight: e.scrollHeight, clientHeight: e.clientHeight});
      }
    }
    const dt = document.getElementById("optax_rmsprop.rmsprop");
    const signature = dt && {text: dt.textContent, height: dt.getBoundingClientRect().height,
                             lineHeight: parseFloat(getComputedStyle(dt).lineHeight)};
    const pre = document.createElement("pre");
    pre.id = "measured";
    pre.textContent = JSON.stringify({boxes, signature});
    document.body.appendChild(pre);
  });
});
</script>"""


def _measure(tmp_path, page: pathlib.Path, width: int = 1280) -> dict:
    """MEASURE's findings for a copy of ``page`` (beside it, so its scripts load) at ``width``."""
    import json

    copy = page.with_name(f"_measure_{page.name}")
    copy.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        dom = _chromium(tmp_path, f"--window-size={width},2000", "--dump-dom", copy.as_uri())
    finally:
        copy.unlink()
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, "MathJax did not finish typesetting"
    return json.loads(html.unescape(found.group(1)))


def _assert_maths_fit(measured: dict) -> None:
    """No display formula is wider or taller than its box: nothing cut off, no scrollbar."""
    assert measured["boxes"], "no display formula"
    for box in measured["boxes"]:
        assert box["scrollWidth"] <= box["clientWidth"] + 1, box
        assert box["scrollHeight"] <= box["clientHeight"] + 1, box


@needs_chromium
def test_browser_index_page(site, tmp_path):
    dom = _dom(tmp_path, site / "index.html")
    _assert_maths_rendered(dom, at_least=1)
    _assert_no_error_boxes(dom)
    text = _text(dom)
    assert "RMSProp for JAX as one optax GradientTransformation" in text
    assert "sphinx-build -E -W --keep-going" in text
    for entry in ("Getting started", "The update rule", "Porting guides", "API reference"):
        assert entry in text, entry
    _screenshot(tmp_path, site / "index.html", "index")


@needs_chromium
def test_browser_api_page(site, tmp_path):
    dom = _dom(tmp_path, site / "api.html")
    _assert_maths_rendered(dom, at_least=20)  # rmsprop's equations, the presets' formulas
    _assert_no_error_boxes(dom)
    text = _text(dom)
    signature = re.search(r"optax_rmsprop\.rmsprop\((.*?)\)→", text.replace(" ", ""))
    assert signature, "no signature of rmsprop on the API page"
    for parameter in (
        "learning_rate:",
        "decay:",
        "=0.9",
        "eps_in_sqrt:bool=True",
        "*,",
        "weight_decay:",
        "nu_dtype:StateDtype=None",
    ):
        assert parameter in signature.group(1), (parameter, signature.group(1))
    for name in ("optax_rmsprop.presets.torch(", "optax_rmsprop.sharding.state_shardings("):
        assert name in text.replace(" ", ""), name
    # at 1280 px: the aliases by name, the signature a few lines, the maths whole
    measured = _measure(tmp_path, site / "api.html")
    signature = measured["signature"]
    for parameter in ("learning_rate", "decay", "eps", "momentum", "weight_decay"):
        assert re.search(rf"\b{parameter}: optax\.ScalarOrSchedule\b", signature["text"]), parameter
    assert "Callable[" not in signature["text"]
    assert signature["height"] <= 10 * signature["lineHeight"], signature
    _assert_maths_fit(measured)
    _screenshot(tmp_path, site / "api.html", "api")


@needs_chromium
def test_browser_maths_check_finds_a_formula_too_wide(site, tmp_path):
    """The negative control of _assert_maths_fit: a formula wider than the page fails it."""
    page = site / "_too_wide.html"
    wide = " + ".join(f"x_{{{i}}}" for i in range(120))
    page.write_text(
        _page(site, "api.html").replace("<h1>", f"<div class='math'>\\[{wide}\\]</div><h1>", 1)
    )
    try:
        measured = _measure(tmp_path, page)
    finally:
        page.unlink()
    with pytest.raises(AssertionError):
        _assert_maths_fit(measured)


@needs_chromium
def test_browser_update_rule_and_a_notebook(site, tmp_path):
    dom = _dom(tmp_path, site / "update_rule.html")
    _assert_maths_rendered(dom, at_least=10)
    _assert_no_error_boxes(dom)
    _assert_maths_fit(_measure(tmp_path, site / "update_rule.html"))
    _screenshot(tmp_path, site / "update_rule.html", "update_rule")
    dom = _dom(tmp_path, site / "notebooks" / "d2l_rmsprop.html")
    _assert_maths_rendered(dom, at_least=2)
    _assert_no_error_boxes(dom)
    _screenshot(tmp_path, site / "notebooks" / "d2l_rmsprop.html", "notebook_d2l_rmsprop")
    _screenshot(tmp_path, site / "getting_started.html", "getting_started")
    _screenshot(tmp_path, site / "porting" / "pytorch.html", "porting_pytorch")
