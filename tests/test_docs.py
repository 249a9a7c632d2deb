"""The documentation builds, its code runs, and a browser shows what the pages promise.

One build per test session (the ``site`` fixture) with the README's command plus ``-E``
(every page read, every notebook and guide executed afresh):
``sphinx-build -E -W --keep-going -j 2 docs docs/_build/html``. Warnings are errors, broken
cross-references included (``nitpicky``), and a code cell that raises, or whose ``assert``
fails, is a warning (``tests/test_docs.py::test_a_failing_cell_fails_the_build`` shows it).

Then Debian's ``chromium`` (headless, no network needed, driven over the DevTools protocol)
opens every built page at 1280 and 390 CSS pixels: MathJax's output and no error box, nothing
cut off, the install text, the links to the code and to optax's and jax's docs, a page per
public object, no link to an address not yet published and no words about how the project is
made. Screenshots go to ``docs/_build/screenshots/``.
"""

from __future__ import annotations

import base64
import fcntl
import html
import inspect
import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import sys
import textwrap
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"
SCREENSHOTS = DOCS / "_build" / "screenshots"
BUILD_TIMEOUT_S = 900
_PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCE = _PYPROJECT["project"]["urls"]["Source"]
PUBLISHED = _PYPROJECT["tool"]["optax_rmsprop"]["published"]  # the repository is public

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
    "contributing.html",
    "update_rule.html",
    "api.html",
    "api/optax_rmsprop.rmsprop.html",
    "porting/index.html",
    "porting/pytorch.html",
    "porting/keras.html",
    "porting/tf1.html",
    "porting/gluon.html",
    "porting/d2l.html",
    "porting/tf_keras.html",
    "porting/paddle.html",
    "porting/chainer.html",
    "porting/timm.html",
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
    _guide_project(
        tmp_path,
        "import optax_rmsprop\n"
        'assert optax_rmsprop.rmsprop(0.1) is None, "this guide\'s claim is wrong"',
    )
    done = _sphinx("-W", "--keep-going", "-q", str(tmp_path), str(tmp_path / "_build"), timeout=300)
    assert done.returncode != 0
    assert "this guide's claim is wrong" in done.stdout + done.stderr


def test_a_rebuild_executes_a_page_that_failed_before(tmp_path):
    """Built with the docs' extensions for re-reading and execution: a page that failed for
    want of a file fails the first build; once the file exists, the same command, without
    ``-E`` and with the page unchanged, executes it again and succeeds."""
    source = tmp_path / "source"  # myst-nb writes beside the output folder: keep it apart
    source.mkdir()
    data = tmp_path / "data.txt"
    _guide_project(
        source,
        f'import pathlib\nprint("the data says", pathlib.Path({str(data)!r}).read_text())',
        extension="reread_every_page",
    )
    build = ("-W", "--keep-going", "-q", str(source), str(tmp_path / "out" / "html"))
    first = _sphinx(*build, timeout=300)
    assert first.returncode != 0 and "FileNotFoundError" in first.stdout + first.stderr
    data.write_text("hello")
    second = _sphinx(*build, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    page = (tmp_path / "out" / "html" / "index.html").read_text()
    assert "the data says hello" in page and "Traceback" not in page


def _guide_project(source: pathlib.Path, cell: str, extension: str | None = None) -> None:
    """A docs project in ``source`` of one page like the guides (a MyST notebook of one
    code cell, ``cell``), with the docs' execution settings, ``myst_nb`` and ``extension``
    (one of the docs' own, from ``docs/_ext``)."""
    settings = {
        name: value
        for name, value in _conf_values().items()
        if name.startswith("nb_") or name in ("source_suffix", "nitpicky")
    }
    extensions = ["myst_nb"] if extension is None else ["myst_nb", extension]
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        f"extensions = {extensions!r}\n"
        + "".join(f"{name} = {value!r}\n" for name, value in settings.items())
    )
    front_matter = textwrap.dedent(
        """\
        ---
        file_format: mystnb
        kernelspec:
          name: python3
          display_name: Python 3
          language: python
        ---

        # A guide

        """
    )
    (source / "index.md").write_text(f"{front_matter}```{{code-cell}} ipython3\n{cell}\n```\n")


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
# What a reader sees, in a real browser: Debian's chromium, headless, driven over the DevTools
# protocol. One browser opens every page at 1280 and at 390 CSS pixels (a laptop, a phone),
# once, and keeps what the checks below need.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="no chromium (apt-get install -y chromium); CI requires it",
)
WIDTHS = (1280, 390)
# Screenshots of these pages at each width, in docs/_build/screenshots/.
SCREENSHOT_PAGES = [
    "index.html",
    "getting_started.html",
    "update_rule.html",
    "api.html",
    "api/optax_rmsprop.rmsprop.html",
    "porting/index.html",
    "porting/tf_keras.html",
    "light_state.html",
    "benchmarks.html",
    "notebooks/index.html",
    "notebooks/d2l_rmsprop.html",
]


class Browser:
    """One headless chromium; ``open`` a page at a width, ``evaluate`` JavaScript in it,
    ``screenshot`` it. The protocol runs over ``--remote-debugging-pipe`` (file descriptors
    3 and 4, messages ending in a NUL byte)."""

    def __init__(self, executable: str, profile: pathlib.Path):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # The pipes reach chromium on descriptors 3 and 4 through a shell's redirections, from
        # copies above 10 (so that neither overwrites the other): no Python code runs in the
        # child, so no fork handler runs either (JAX warns at a fork of its process).
        ends = [fcntl.fcntl(end, fcntl.F_DUPFD, 10) for end in (to_browser, from_browser)]
        wire = 'exec "$@" 3<&{0} 4>&{1} {0}<&- {1}>&-'.format(*ends)
        self._process = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                wire,
                "sh",
                executable,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=ends,
        )
        for end in ends:
            os.close(end)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self._call("Page.enable", session=True)

    def _send(self, method: str, session: bool, params: dict) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], 120)
            if not ready:
                raise TimeoutError("chromium sent nothing for 120 s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method: str, session: bool = False, wait_for: str | None = None, **params):
        """Sends a command; returns its result (after the event ``wait_for``, if given)."""
        number = self._send(method, session, params)
        result, seen = None, wait_for is None
        while result is None or not seen:
            message = self._receive()
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result = message["result"]
            elif message.get("method") == wait_for:
                seen = True
        return result

    def open(self, url: str, width: int, height: int = 900) -> None:
        """Loads ``url`` in a window ``width`` CSS pixels wide (a phone's below 600), and
        waits for its load event, MathJax's typesetting and the fonts."""
        self._call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        self._call("Page.navigate", session=True, wait_for="Page.loadEventFired", url=url)
        self.evaluate(
            "(window.MathJax && MathJax.startup && MathJax.startup.promise"
            " ? MathJax.startup.promise : Promise.resolve()).then(() => document.fonts.ready)"
            ".then(() => true)"
        )

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (a promise's, once it settles)."""
        done = self._call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in done:
            raise RuntimeError(done["exceptionDetails"])
        return done["result"].get("value")

    def screenshot(self, path: pathlib.Path, max_height: int = 6000) -> None:
        """The page from its top, at most ``max_height`` pixels of it, as PNG."""
        width, height = self.evaluate(
            "[document.documentElement.clientWidth, document.documentElement.scrollHeight]"
        )
        shot = self._call(
            "Page.captureScreenshot",
            session=True,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self._send("Browser.close", False, {})
            self._process.wait(timeout=20)
        except Exception:
            self._process.kill()
        finally:
            os.close(self._write)
            os.close(self._read)


# Tables, maths, code and signatures wider than the room they have, unless a box around them
# scrolls with a visible scrollbar; each as {what, text, needs, room, why}.
OVERFLOW = r"""(() => {
  // Tables, maths, code and signatures wider than the room they have, unless a box around
  // them scrolls with a visible scrollbar: each as {what, text, needs, room, why}.
  const main = document.querySelector("article[role=main]") || document.body;
  const content = main.closest(".content") || main;
  const room = Math.min(content.getBoundingClientRect().right,
                        document.documentElement.clientWidth);
  const style = (e) => getComputedStyle(e);
  const scrolls = (e) => ["auto", "scroll"].includes(style(e).overflowX);
  const clips = (e) => ["hidden", "clip"].includes(style(e).overflowX);
  // A cue that more is hidden: a scrollbar that takes room, or the shadows of site.css.
  const cue = (e) => e.offsetHeight - e.clientHeight - parseFloat(style(e).borderTopWidth)
    - parseFloat(style(e).borderBottomWidth) >= 4 || style(e).backgroundImage.includes("gradient");
  const name = (e) => e.tagName.toLowerCase() + (typeof e.className === "string" && e.className
    ? "." + e.className.trim().split(/\s+/).join(".") : "");
  const found = [];
  const report = (e, needs, limit, why) => found.push(
    {what: name(e), text: e.textContent.trim().slice(0, 60), needs: Math.round(needs),
     room: Math.round(limit), why});
  const selector = "table, pre, mjx-container[display='true'], div.math, .math-wrapper, " +
    ".highlight, .table-wrapper, .cell_output, .output, dl.py > dt, img";
  for (const e of main.querySelectorAll(selector)) {
    if (e.closest("mjx-assistive-mml")) continue;
    const box = e.getBoundingClientRect();
    const wider = e.scrollWidth > e.clientWidth + 1;
    if (wider && scrolls(e)) {
      if (!cue(e)) report(e, e.scrollWidth, e.clientWidth, "it scrolls and nothing shows it");
      continue;
    }
    if (wider && clips(e)) {
      report(e, e.scrollWidth, e.clientWidth, "its content is cut off");
      continue;
    }
    const right = Math.max(box.right, box.left + e.scrollWidth);  // content spilling out too
    let limit = room, why = "it runs past the text column";
    // Boxes inside the page's text only: on a phone the whole column scrolls, which shows nothing.
    for (let a = e.parentElement; a && a !== main; a = a.parentElement) {
      if (scrolls(a)) { limit = Infinity; break; }
      if (clips(a)) { limit = Math.min(room, a.getBoundingClientRect().right);
                      why = "a box around it cuts it off"; break; }
    }
    if (right > limit + 1) report(e, right, limit, why);
  }
  return found;
})()"""

# What the checks read from a page once it is typeset.
PAGE_FACTS = """(() => {
  const main = document.querySelector("article[role=main]") || document.body;
  return {
    text: main.innerText,
    links: [...document.querySelectorAll("a[href]")].map((a) => ({
      href: a.getAttribute("href"), url: a.href, text: a.textContent.trim(),
      classes: a.className})),
    maths: document.querySelectorAll("mjx-container").length,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    title: document.title,
  };
})()"""


def _site_pages(site: pathlib.Path) -> list[str]:
    """The site's pages, less Sphinx's index and search and the copies of the source files."""
    return sorted(
        str(page.relative_to(site))
        for page in site.rglob("*.html")
        if not page.name.startswith(("genindex", "search", "py-modindex", "_measure"))
        and not str(page.relative_to(site)).startswith(("_modules/", "_repo/"))
    )


@pytest.fixture(scope="module")
def browsed(site, tmp_path_factory) -> dict:
    """{(width, page): facts} for every page at each width, each page's overflow included;
    the screenshots of SCREENSHOT_PAGES written on the way."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    browser = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium"))
    facts = {}
    try:
        for width in WIDTHS:
            for name in _site_pages(site):
                browser.open((site / name).as_uri(), width)
                facts[width, name] = browser.evaluate(PAGE_FACTS)
                facts[width, name]["overflow"] = browser.evaluate(OVERFLOW)
                if name in SCREENSHOT_PAGES:
                    shot = name.removesuffix(".html").replace("/", "_")
                    browser.screenshot(SCREENSHOTS / f"{shot}_{width}.png")
    finally:
        browser.close()
    (SCREENSHOTS / "overflow.json").write_text(
        json.dumps({f"{w} {n}": f["overflow"] for (w, n), f in facts.items() if f["overflow"]})
    )
    return facts


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    opened = Browser(CHROMIUM, tmp_path / "chromium")
    yield opened
    opened.close()


# Each display formula's box against what it holds, for the formula and each ancestor that
# could scroll or clip it (wider may scroll, taller may not: a scrollbar beside a formula), and
# the height of rmsprop's signature in lines.
MATHS_BOXES = """(() => {
  const boxes = [];
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    for (let e = c; e && e !== document.body; e = e.parentElement) {
      const css = getComputedStyle(e);
      if (e === c || css.overflowX !== "visible" || css.overflowY !== "visible")
        boxes.push({formula: c.textContent.slice(0, 40), element: e.tagName + "." + e.className,
                    scrollWidth: e.scrollWidth, clientWidth: e.clientWidth,
                    scrollHeight: e.scrollHeight, clientHeight: e.clientHeight,
                    scrolls: ["auto", "scroll"].includes(css.overflowX)});
    }
  }
  const dt = document.getElementById("optax_rmsprop.rmsprop");
  const signature = dt && {text: dt.textContent, height: dt.getBoundingClientRect().height,
                           lineHeight: parseFloat(getComputedStyle(dt).lineHeight)};
  return {boxes, signature};
})()"""


def _assert_maths_fit(measured: dict, scroll_ok: bool = False) -> None:
    """No display formula is taller than its box (no scrollbar beside it), nor wider, unless
    ``scroll_ok`` and a box around it scrolls."""
    assert measured["boxes"], "no display formula"
    scrolling = {box["formula"] for box in measured["boxes"] if box["scrolls"]}
    for box in measured["boxes"]:
        assert box["scrollHeight"] <= box["clientHeight"] + 1, box
        if not (scroll_ok and box["formula"] in scrolling):
            assert box["scrollWidth"] <= box["clientWidth"] + 1, box


@needs_chromium
def test_browser_pages_render_their_maths(browsed):
    for (width, name), facts in browsed.items():
        assert facts["mathErrors"] == 0, (width, name)
        assert "Traceback" not in facts["text"], (width, name)
    for name, at_least in [
        ("index.html", 1),
        ("update_rule.html", 10),
        ("api/optax_rmsprop.rmsprop.html", 5),
        ("api/optax_rmsprop.presets.torch.html", 1),
        ("notebooks/d2l_rmsprop.html", 2),
    ]:
        assert browsed[1280, name]["maths"] >= at_least, name


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_browser_nothing_is_cut_off(browsed, width):
    """No table, formula, code block or signature on any page runs past its column or is cut
    off by a box around it, unless it scrolls with a visible scrollbar."""
    overflowing = {
        name: facts["overflow"]
        for (w, name), facts in browsed.items()
        if w == width and facts["overflow"]
    }
    assert not overflowing, overflowing
    assert (SCREENSHOTS / f"index_{width}.png").stat().st_size > 20_000


@needs_chromium
def test_browser_overflow_check_finds_what_is_cut_off(site, browser):
    """The negative control of OVERFLOW: a formula in a box that clips, a table wider than the
    column, and a code block that scrolls with nothing to show it are each reported."""
    page = site / "_measure_overflow.html"
    wide = " + ".join(f"x_{{{i}}}" for i in range(60))
    cells = "".join(f"<td>column_{i}_of_a_wide_table</td>" for i in range(20))
    code = "y = " + " + ".join(f"x{i}" for i in range(80))
    page.write_text(
        _page(site, "update_rule.html").replace(  # a page that loads MathJax
            "<h1>",
            f"<div class='math' style='overflow: hidden'>\\[{wide}\\]</div>"
            f"<table><tr>{cells}</tr></table>"
            f"<pre style='scrollbar-width: none; background: none'>{code}</pre><h1>",
            1,
        )
    )
    try:
        for width in WIDTHS:
            browser.open(page.as_uri(), width)
            found = browser.evaluate(OVERFLOW)
            whats = [item["what"].split(".")[0] for item in found]
            assert "div" in whats and "table" in whats and "pre" in whats, (width, found)
    finally:
        page.unlink()


@needs_chromium
def test_browser_install_text(browsed):
    for name in ("index.html", "getting_started.html"):
        text = browsed[1280, name]["text"]
        assert "clone of" in text and "pip install -e ." in text, name
        if PUBLISHED:
            assert f"pip install git+{SOURCE}" in text, name
        else:
            assert "not published yet" in text, name
    index = browsed[1280, "index.html"]["text"]
    assert "sphinx-build" not in index and "pytest" not in index  # contributors' page
    assert "sphinx-build -E -W --keep-going" in browsed[1280, "contributing.html"]["text"]


@needs_chromium
def test_browser_notebooks_gallery(site, browsed):
    """The notebooks' index shows each notebook as a thumbnail and a line, linking its page."""
    links = browsed[1280, "notebooks/index.html"]["links"]
    cards = {link["href"]: link["text"] for link in links if "gallery-card" in link["classes"]}
    names = sorted(path.stem for path in (ROOT / "colab").glob("*.ipynb"))
    assert sorted(href.removesuffix(".html") for href in cards) == names, cards
    for name in names:
        assert (site / "notebooks" / f"{name}.html").is_file(), name
        assert (site / "_static" / "thumbnails" / f"{name}.png").stat().st_size > 5_000, name
        assert len(cards[f"{name}.html"].split()) >= 6, cards[f"{name}.html"]  # title and a line


@needs_chromium
def test_browser_repository_and_source_links(site, browsed):
    """Every page links the code from its sidebar; each API page has a [source] link to the
    site's copy of its module; a repository file a page names links to its copy."""
    for (width, name), facts in browsed.items():
        code = [link for link in facts["links"] if link["text"] in ("Source code", "Repository")]
        assert code, (width, name)
        if not PUBLISHED:
            assert code[0]["url"].endswith("/_modules/index.html"), code
    assert (site / "_modules" / "index.html").is_file()
    links = browsed[1280, "api/optax_rmsprop.rmsprop.html"]["links"]
    (source,) = [link for link in links if link["text"] == "[source]"]
    assert source["href"].startswith("../_modules/optax_rmsprop/core.html#"), source
    assert (site / "_modules" / "optax_rmsprop" / "core.html").is_file()
    for page, path in [
        ("porting/index.html", "tests/test_presets.py"),
        ("many_devices.html", "examples/multihost.py"),
    ]:
        (link,) = {link["url"] for link in browsed[1280, page]["links"] if link["text"] == path}
        if PUBLISHED:
            assert link == f"{SOURCE}/blob/main/{path}"
        else:
            copy = site / "_repo" / f"{path}.html"
            assert link == copy.as_uri(), (link, copy)
            first_line = (ROOT / path).read_text().splitlines()[0]
            assert first_line.split()[0] in _text(copy.read_text()), path


@needs_chromium
def test_browser_api_has_a_page_per_object(site, browsed):
    """Each public object has its page (signature, docstring, [source]); the API's index
    links every one."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from optax_rmsprop_docs import MODULES, public_names
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    index = {link["href"] for link in browsed[1280, "api.html"]["links"]}
    names = [f"{module}.{name}" for module in MODULES for name in public_names(module)]
    assert len(names) >= 35 and "optax_rmsprop.datasets.AIRFOIL_URL" in names
    for name in names:
        assert f"api/{name}.html" in index, name
        page = _page(site, f"api/{name}.html")
        assert f'id="{name}"' in page, name
        assert "str(object=" not in page, name  # no docstring of a builtin type
        module, _, short = name.rpartition(".")
        obj = getattr(sys.modules[module], short)
        if inspect.isclass(obj) or (callable(obj) and not hasattr(obj, "__origin__")):
            assert "[source]" in browsed[1280, f"api/{name}.html"]["text"], name  # not data
    for module in MODULES[1:]:
        assert f'id="module-{module}"' in _page(site, "api.html"), module
    text = browsed[1280, "api/optax_rmsprop.rmsprop.html"]["text"].replace(" ", "")
    signature = re.search(r"optax_rmsprop\.rmsprop\((.*?)\)→", text.replace("\n", ""))
    assert signature, "no signature of rmsprop"
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


@needs_chromium
def test_browser_intersphinx_links_resolve_offline(browsed):
    """optax, jax and numpy names link to their documentation, from inventories written at
    build time (docs/_ext/offline_inventories.py)."""
    urls = {link["url"] for facts in browsed.values() for link in facts["links"]}
    for expected in (
        "https://optax.readthedocs.io/en/latest/api/optimizers.html#optax.rmsprop",
        "https://optax.readthedocs.io/en/latest/api/transformations.html#optax.GradientTransformationExtraArgs",
        "https://docs.jax.dev/en/latest/_autosummary/jax.Array.html",
    ):
        assert expected in urls, expected


def test_install_text_follows_the_switch():
    """The install text of the index and getting started: from a clone while the repository is
    not published, from its address (pyproject.toml's Source) once it is."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import repository
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    published, unpublished = repository.install_text(True), repository.install_text(False)
    assert f"pip install git+{SOURCE}" in published and f"git clone {SOURCE}" in published
    assert SOURCE not in unpublished and "not published yet" in unpublished
    assert "pip install -e ." in published and "pip install -e ." in unpublished


def test_no_link_to_an_unpublished_address(site):
    """Until pyproject.toml says the repository is published, no page links to its address
    or to Colab."""
    if PUBLISHED:
        pytest.skip("the repository is published")
    for page in site.rglob("*.html"):
        for href in re.findall(r"""\bhref=["']([^"']+)""", page.read_text()):
            assert not href.startswith(SOURCE), (page, href)
            assert "colab.research.google.com" not in href, (page, href)


# Words about how the project is made, not about the library: none may reach a user.
ENVIRONMENT_WORDS = re.compile(
    "|".join(
        [
            r"device\s+tool",
            r"[$]OUT\b",
            r"shared\s+box",
            r"\blent\s+(?:a|to|through|us)\b",
            r"(?<![\w.])sessions?\b",  # tf.Session and friends are TensorFlow's
            r"\bthis\s+project's\s+\d-core",
        ]
    ),
    re.IGNORECASE,
)


def _environment_words(text: str) -> list[str]:
    return [m.group(0) for m in ENVIRONMENT_WORDS.finditer(text) if m.group(0) != "Session"]


def test_environment_words_are_caught():
    assert _environment_words("measured on a machine lent through the device tool, in $OUT")
    assert _environment_words("for a session lent a GPU; this shared box")
    assert not _environment_words("tf.compat.v1.Session() runs the graph; a Session object")


@needs_chromium
def test_no_words_of_our_environment(browsed):
    """The pages (as a reader sees them), the README and the benchmark scripts and results
    speak of the library and its users only."""
    for (width, name), facts in browsed.items():
        if width == WIDTHS[0]:
            assert not _environment_words(facts["text"]), name
    files = [ROOT / "README.md", *sorted((ROOT / "benchmarks").rglob("*"))]
    for path in files:
        if path.is_file() and path.suffix in (".md", ".py", ".sh", ".txt"):
            assert not _environment_words(path.read_text()), path


@needs_chromium
def test_browser_maths_fit_on_the_api_and_the_update_rule(site, browser):
    """At 1280 px: rmsprop's signature a few lines with the aliases by name, and the display
    formulas of its page and of the update rule whole; at 390 px they fit or scroll."""
    browser.open((site / "api" / "optax_rmsprop.rmsprop.html").as_uri(), 1280)
    measured = browser.evaluate(MATHS_BOXES)
    signature = measured["signature"]
    for parameter in ("learning_rate", "decay", "eps", "momentum", "weight_decay"):
        assert re.search(rf"\b{parameter}: optax\.ScalarOrSchedule\b", signature["text"]), parameter
    assert "Callable[" not in signature["text"]
    assert signature["height"] <= 12 * signature["lineHeight"], signature  # 21 arguments
    _assert_maths_fit(measured)
    browser.open((site / "update_rule.html").as_uri(), 1280)
    _assert_maths_fit(browser.evaluate(MATHS_BOXES))
    for page in ("index.html", "api/optax_rmsprop.rmsprop.html", "update_rule.html"):
        browser.open((site / page).as_uri(), 390)
        _assert_maths_fit(browser.evaluate(MATHS_BOXES), scroll_ok=True)
    browser.open((site / "index.html").as_uri(), 390)
    _assert_maths_fit(browser.evaluate(MATHS_BOXES))  # the main formula fits a phone


@needs_chromium
def test_browser_maths_check_finds_a_formula_too_wide(site, browser):
    """The negative control of _assert_maths_fit: a formula wider than the page fails it."""
    page = site / "_measure_too_wide.html"
    wide = " + ".join(f"x_{{{i}}}" for i in range(120))
    page.write_text(
        _page(site, "api.html").replace("<h1>", f"<div class='math'>\\[{wide}\\]</div><h1>", 1)
    )
    try:
        browser.open(page.as_uri(), 1280)
        measured = browser.evaluate(MATHS_BOXES)
    finally:
        page.unlink()
    with pytest.raises(AssertionError):
        _assert_maths_fit(measured)
