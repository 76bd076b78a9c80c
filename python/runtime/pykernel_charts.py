"""matplotlib figures as rich results: PNG + ``text/plain`` + a typed chart record.

Nothing here imports matplotlib: when user code imports it, the engine's backend
(``module://pykernel_backend``, defined lazily below) becomes the default unless the user chose a
backend (``MPLBACKEND``, a ``matplotlibrc``, ``matplotlib.use``). ``plt.show()`` emits every open
figure and closes it; figures still open when the run ends are emitted then (``flush_figures``).

A figure belongs to the context whose code made it (``pykernel_runtime.thread_owner``: the running
context on the interpreter thread, the starter of any other thread): only that context's
``plt.show()`` and runs emit it, and pyplot's current figure (``plt.gcf()``, what ``plt.plot``
draws on) is the calling context's own, never a figure a thread of another context is drawing;
``plt.close('all')`` closes the calling context's figures. So is the backend: what a context
chooses (``matplotlib.use``, ``plt.switch_backend``, ``rcParams['backend']``) is its own, and the
others keep drawing with the engine's backend (``_backend_per_context``).
"""

import base64
import io
import math
import sys
import warnings

_BACKEND = "module://pykernel_backend"
# {owner: True} for the owners (context IDs; None: unknown) of figures made through the backend
# since their last flush; the engine flushes at the end of a run whose context (or None) is in it.
_active = {}
# {context ID: True} for the contexts with matplotlib state (figures of any backend, a backend of
# their own): the engine calls `forget_context` when one of them is deleted.
_contexts = {}
# {context ID: backend name}: the `rcParams['backend']` of each context that set it (by choosing a
# backend, or by drawing its first figure); the others read the process's.
_backends = {}
# {owner: backend}: pyplot's backend (`pyplot._backend_mod`) of each owner that made a figure or
# chose a backend since pyplot was imported.
_pyplot_backends = {}
_Manager = None  # the backend's figure manager class, once defined


# ---------------------------------------------------------------- the backend (lazy)


_BACKEND_NAMES = frozenset(
    ("FigureCanvas", "FigureManager", "show", "FigureCanvasPyKernel", "FigureManagerPyKernel"))


def _backend_attribute(name):
    """``pykernel_backend.__getattr__``: defines the backend on first use of one of its names
    (matplotlib imported). Any other name is missing without importing anything, so code that
    looks at every module (``inspect.stack()`` asks each for ``__file__``) works without
    matplotlib and does not import it."""
    module = sys.modules["pykernel_backend"]
    if name not in _BACKEND_NAMES:
        raise AttributeError(f"module 'pykernel_backend' has no attribute {name!r}")
    if "FigureCanvas" not in module.__dict__:
        from matplotlib.backend_bases import FigureManagerBase
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        class FigureManagerPyKernel(FigureManagerBase):
            def __init__(self, canvas, num):
                super().__init__(canvas, num)
                self._pykernel_owner = owner = _owner()
                _active[owner] = True
                if owner is not None:
                    _contexts[owner] = True

            def show(self):
                """``fig.show()``: emits the figure now, and marks it shown: the end of the run
                closes it without emitting it again, unless it changed since."""
                figure = self.canvas.figure
                emit_figure(figure, is_main=False)
                figure._pykernel_shown = True
                figure.stale = False  # any change to the figure from now on makes it stale again

        class FigureCanvasPyKernel(FigureCanvasAgg):
            manager_class = FigureManagerPyKernel

        def show(*args, **kwargs):
            """Emits every open figure as a result and closes it."""
            flush_figures()

        _record_box_plots()
        global _Manager
        _Manager = FigureManagerPyKernel
        module.__dict__.update(
            FigureCanvas=FigureCanvasPyKernel, FigureManager=FigureManagerPyKernel, show=show,
            FigureCanvasPyKernel=FigureCanvasPyKernel, FigureManagerPyKernel=FigureManagerPyKernel)
    try:
        return module.__dict__[name]
    except KeyError:
        raise AttributeError(f"module 'pykernel_backend' has no attribute {name!r}") from None


def _record_box_plots():
    """Keeps the statistics ``Axes.bxp`` draws (what ``boxplot`` computed) on each box's median
    line, so a box plot's record holds its exact values instead of guesses from its lines; a box
    is in the record while its median line is on the axes (not after ``ax.cla()``)."""
    from matplotlib.axes import Axes
    original = Axes.bxp
    if getattr(original, "_pykernel", False):
        return

    def bxp(self, bxpstats, *args, **kwargs):
        bxpstats = list(bxpstats)
        artists = original(self, bxpstats, *args, **kwargs)
        medians = artists.get("medians", []) if isinstance(artists, dict) else []
        for stats, median in zip(bxpstats, medians):
            median._pykernel_box = stats
        return artists

    bxp._pykernel = True
    bxp.__wrapped__ = original
    Axes.bxp = bxp


_MISSING = object()  # what a dict lookup gives for a key it does not have


def _owner():
    """The context the calling thread belongs to; ``None`` outside contexts (``process.code_run``)."""
    runtime = sys.modules.get("pykernel_runtime")
    return None if runtime is None else runtime.thread_owner()


def _owned_by(manager, owner):
    """Whether a figure manager of the backend is ``owner``'s (or of no known context)."""
    return getattr(manager, "_pykernel_owner", owner) in (owner, None)


def _figures_per_context():
    """pyplot's figures (``Gcf``) are owned by the contexts that made them, whatever their backend:
    pyplot's current figure (``Gcf.get_active``: ``plt.gcf()``, ``plt.plot``, ``plt.close()``) is
    the last one made or made current by the calling thread's context, and ``plt.close('all')``
    (``Gcf.destroy_all``) closes that context's figures: a figure a thread of another context is
    drawing is never drawn on or closed by this one's code. (Figures of no known context are
    everyone's; the ``destroy_all`` matplotlib calls at exit is the original.)"""
    from matplotlib._pylab_helpers import Gcf
    if getattr(Gcf.get_active, "_pykernel", False):
        return
    adopt = Gcf._set_new_active_manager

    def get_active(cls):
        owner = _owner()
        return next((manager for manager in reversed(cls.figs.values()) if _owned_by(manager, owner)), None)

    def _set_new_active_manager(cls, manager):
        if not hasattr(manager, "_pykernel_owner"):  # a figure of another backend
            manager._pykernel_owner = _owner()
        if manager._pykernel_owner is not None:
            _contexts[manager._pykernel_owner] = True
        adopt(manager)

    def destroy_all(cls):
        owner = _owner()
        for manager in [manager for manager in cls.figs.values() if _owned_by(manager, owner)]:
            cls.destroy(manager)

    for function in (get_active, _set_new_active_manager, destroy_all):
        function._pykernel = True
        function.__doc__ = getattr(Gcf, function.__name__).__doc__
        setattr(Gcf, function.__name__, classmethod(function))


def _backend_per_context(matplotlib):
    """``rcParams['backend']`` is the calling context's: what ``matplotlib.use`` (before pyplot is
    imported), ``rcParams['backend'] = ...`` and ``plt.switch_backend`` set, and what
    ``matplotlib.get_backend()`` reads. A context that set none reads the process's (the engine's
    backend unless ``MPLBACKEND`` or a ``matplotlibrc`` chose one); code of no known context (a
    module the server preloads) sets the process's."""
    rc_params = matplotlib.rcParams
    RcParams = type(rc_params)
    get, set_ = RcParams._get, RcParams._set
    if getattr(get, "_pykernel", False):
        return

    def _get(self, key):
        if key == "backend" and self is rc_params:
            backend = _backends.get(_owner(), _MISSING)
            if backend is not _MISSING:
                return backend
        return get(self, key)

    def _set(self, key, val):
        if key == "backend" and self is rc_params:
            owner = _owner()
            if owner is not None:
                _backends[owner] = val
                _contexts[owner] = True
                return
        set_(self, key, val)

    for function, original in ((_get, get), (_set, set_)):
        function._pykernel = True
        function.__doc__ = original.__doc__
        setattr(RcParams, function.__name__, function)


def _pyplot_backend_per_context(pyplot):
    """pyplot's backend (``pyplot._backend_mod``: what ``plt.figure`` makes figures with and
    ``plt.show`` shows them with) is the calling context's: ``plt.switch_backend`` (and
    ``matplotlib.use`` once pyplot is imported) switches the calling context's, and a context's
    first figure switches to the backend of its ``rcParams['backend']``, as pyplot does the first
    time."""
    original = pyplot.switch_backend
    if getattr(original, "_pykernel", False):
        return
    import functools
    import threading
    switching = threading.RLock()  # the module's `_backend_mod` is the calling owner's until kept

    @functools.wraps(original)
    def switch_backend(newbackend):
        with switching:
            original(newbackend)  # which switches through `switch_backend` to resolve "auto"
            _pyplot_backends[_owner()] = pyplot.__dict__["_backend_mod"]

    @functools.wraps(pyplot._get_backend_mod)
    def _get_backend_mod():
        owner = _owner()
        backend = _pyplot_backends.get(owner)
        if backend is None:
            switch_backend(pyplot.rcParams._get("backend"))
            backend = _pyplot_backends[owner]
        return backend

    switch_backend._pykernel = True
    pyplot.switch_backend = switch_backend
    pyplot._get_backend_mod = _get_backend_mod


def _install_backend_module():
    import types
    module = types.ModuleType("pykernel_backend", "PyKernel's matplotlib backend: figures become rich results.")
    module.__getattr__ = _backend_attribute
    sys.modules["pykernel_backend"] = module


def after_import(names, action, once=False):
    """Runs ``action(module)`` when one of the modules ``names`` (a name or a tuple of names) is
    imported, right after its body ran: a meta path finder put first on ``sys.meta_path`` wraps
    the loader the other finders find. It stays there (a module imported again runs ``action``
    again) unless ``once``: then it goes at the first import of one of ``names``.

    The one "after import" hook of the runtime: the matplotlib backend below, IPython's display
    functions (``pykernel_results``) and the figures flushed at exit by ``process.code_run``'s
    ``sitecustomize`` use it.
    """
    sys.meta_path.insert(0, _AfterImport((names,) if isinstance(names, str) else tuple(names), action, once))


class _AfterImport:
    """The meta path finder of ``after_import``."""

    def __init__(self, names, action, once):
        self._names = names
        self._action = action
        self._once = once

    def find_spec(self, name, path=None, target=None):
        if name not in self._names:
            return None
        import importlib.util
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if not self._once:
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module
        action = self._action

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                original(module)
                action(module)

        spec.loader = Loader()
        return spec


def _matplotlib_imported(matplotlib):
    """The process's backend is the engine's unless the user chose one; then each context's
    backend and figures are its own."""
    _choose_backend(matplotlib)
    _backend_per_context(matplotlib)
    _figures_per_context()


def _choose_backend(matplotlib):
    import os
    if os.environ.get("MPLBACKEND"):
        return
    try:
        if matplotlib.rcParams._get_backend_or_none() is None:  # the automatic default
            matplotlib.rcParams["backend"] = _BACKEND
    except Exception:  # an old or unusual matplotlib: leave its own choice
        pass


# ---------------------------------------------------------------- emitting figures


def flush_figures():
    """Emits every open figure of the calling context (in number order) as a result, then closes
    them all, as Jupyter's inline backend does (one ``fig.show()`` emitted and not changed since
    is not emitted again). Each figure is drawn on its own: one that cannot be drawn (a bad mathtext
    title) does not keep the others from being emitted, and it is closed too; once all are closed
    the first failure is raised (further ones are written to stderr). A stop (``KeyboardInterrupt``,
    the run's timeout) ends the drawing: the figures not drawn yet are closed undrawn."""
    pyplot, figures = _take_figures()
    failure = None
    try:
        for figure in figures:
            if getattr(figure, "_pykernel_shown", False) and not figure.stale:
                continue  # fig.show() emitted it as it is
            try:
                emit_figure(figure, is_main=False)
            except Exception as error:
                if failure is None:
                    failure = error
                else:
                    import traceback
                    traceback.print_exception(error, file=sys.stderr)
    finally:
        _close(pyplot, figures)
    if failure is not None:
        raise failure


def close_figures():
    """Closes every open figure of the calling context without drawing it: the end of a run
    stopped by its timeout or an interrupt, whose answer must not wait for drawing (native code no
    stop interrupts: seconds for a large figure). They are not emitted."""
    pyplot, figures = _take_figures()
    _close(pyplot, figures)


def forget_context(context):
    """A deleted context's matplotlib state: its figures of every backend (its threads drew them
    after its last run) are closed undrawn, and its backend is forgotten."""
    for state in (_contexts, _active, _backends, _pyplot_backends):
        state.pop(context, None)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        from matplotlib._pylab_helpers import Gcf
        _close(pyplot, [manager.canvas.figure for manager in Gcf.get_all_fig_managers()
                        if getattr(manager, "_pykernel_owner", None) == context])


def _take_figures():
    """``(pyplot, figures)``: the open figures made through the backend by the calling context and
    by no known context, their owners out of ``_active`` first (a figure made meanwhile puts its
    owner back)."""
    owners = (_owner(), None)
    for each in owners:
        _active.pop(each, None)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or _Manager is None:
        return None, []
    from matplotlib._pylab_helpers import Gcf
    return pyplot, [manager.canvas.figure for manager in Gcf.get_all_fig_managers()
                    if isinstance(manager, _Manager) and manager._pykernel_owner in owners]


def _close(pyplot, figures):
    """Closes every one of ``figures``, even when a stop lands while one is closed (raised after)."""
    stop = None
    for figure in figures:
        try:
            pyplot.close(figure)
        except BaseException as error:
            stop = stop or error
    if stop is not None:
        raise stop


def emit_figure(figure, is_main):
    """One result for a figure: ``image/png``, ``text/plain`` and ``chart``."""
    data, chart = figure_bundle(figure)
    import json
    sys.modules["pykernel_results"]._emit((is_main, data, None, json.dumps(chart, allow_nan=False, default=str)))


def figure_result(figure):
    """A Figure as the last expression: one main result, and the figure is closed."""
    emit_figure(figure, is_main=True)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)


def figure_bundle(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    try:
        # The record is the engine's work: its warnings (numpy's on masked values) are not the
        # code's to see, and the code's filters (warnings as errors) do not apply to it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chart = chart_of(figure)
    except Exception as error:  # never lose the figure over its record
        sys.stderr.write(f"chart extraction failed ({type(error).__name__}: {error}); the figure is an unknown chart\n")
        chart = _chart("unknown", None)
    return {"image/png": png, "text/plain": repr(figure)}, chart


def is_figure(obj):
    matplotlib_figure = sys.modules.get("matplotlib.figure")
    return matplotlib_figure is not None and isinstance(obj, matplotlib_figure.Figure)


# ---------------------------------------------------------------- chart records


def chart_of(figure):
    axes = [ax for ax in figure.get_axes() if ax.get_visible() and _has_content(ax)]
    if not axes:
        return _chart("unknown", None, title=_figure_title(figure))
    if len(axes) == 1:
        chart = _axes_chart(axes[0])
        if not chart["title"]:
            chart["title"] = _figure_title(figure)
        return chart
    composite = _chart("composite_chart", None, title=_figure_title(figure))
    composite["elements"] = [_axes_chart(ax) for ax in axes]
    return composite


def _has_content(ax):
    return bool(ax.lines or ax.collections or ax.patches or ax.containers)


def _figure_title(figure):
    title = getattr(figure, "_suptitle", None)
    return title.get_text() if title is not None else None


def _chart(kind, ax, title=None):
    chart = {"type": kind, "title": title, "x_label": None, "y_label": None, "x_unit": None, "y_unit": None,
             "x_scale": None, "y_scale": None, "x_ticks": [], "x_tick_labels": [], "y_ticks": [],
             "y_tick_labels": [], "elements": []}
    if ax is not None:
        # The centred title, else a left or right one (`set_title(..., loc="left")`).
        chart["title"] = next((title for loc in ("center", "left", "right") if (title := ax.get_title(loc=loc))), None)
        for name in ("x", "y"):
            axis = getattr(ax, f"{name}axis")
            label = getattr(ax, f"get_{name}label")() or None
            chart[f"{name}_label"], chart[f"{name}_unit"] = label, _unit(label)
            is_date, write = _axis_values(axis)
            chart[f"{name}_scale"] = "datetime" if is_date else getattr(ax, f"get_{name}scale")()
            positions, labels = _ticks(axis)
            chart[f"{name}_ticks"] = [write(position) for position in positions]
            chart[f"{name}_tick_labels"] = labels
    return chart


def _ticks(axis):
    """``(positions, labels)`` of the ticks the axis labels, in order of position: its major ticks,
    and the minor ticks whose label shows text (pandas' time series label their minor ticks:
    ``"Jan\\n2024"``, ``"Feb"``, ``"Mar"``; so does a log axis over less than a decade). Labels are
    the text the axes show, matplotlib's mathtext written plainly (a log axis's
    ``$\\mathdefault{10^{2}}$`` as it reads: ``10^2``)."""
    positions = list(axis.get_majorticklocs())
    labels = [_plain_math(label.get_text()) for label in axis.get_majorticklabels()]
    minor_positions = list(axis.get_minorticklocs())
    minor_labels = [_plain_math(label.get_text()) for label in axis.get_minorticklabels()]
    if len(labels) == len(positions) and len(minor_labels) == len(minor_positions):
        shown = [(position, label) for position, label in zip(minor_positions, minor_labels) if label]
        if shown:
            ticks = sorted([*zip(positions, labels), *shown], key=lambda tick: tick[0])
            positions, labels = [position for position, _ in ticks], [label for _, label in ticks]
    return positions, labels


# The mathtext of matplotlib's tick formatters (log, logit, scalar with math text), as plain text.
_MATH_SYMBOLS = ((r"\mathdefault", ""), (r"\times", "\u00d7"), (r"\cdot", "\u00b7"), (r"\,", " "),
                 (r"\;", " "), (r"\:", " "), (r"\ ", " "), (r"\!", ""))


def _plain_math(text):
    """A label that is mathtext (``$...$``) as the text it shows: ``$\\mathdefault{10^{-1}}$`` →
    ``10^-1``, ``$\\mathdefault{2\\times10^{1}}$`` → ``2×10^1``, ``\\frac{1}{2}`` → ``1/2``. Other
    text, and mathtext with anything else (``$\\alpha$``), is kept as it is."""
    if len(text) < 2 or text[0] != "$" or text[-1] != "$" or "$" in text[1:-1]:
        return text
    import re
    plain = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", text[1:-1])
    for symbol, replacement in _MATH_SYMBOLS:
        plain = plain.replace(symbol, replacement)
    plain = plain.replace("{", "").replace("}", "")
    return text if "\\" in plain else plain


def _unit(label):
    """The unit in a label's trailing parentheses: ``"Temperature (°C)"`` → ``"°C"``."""
    if label and label.rstrip().endswith(")") and "(" in label:
        inner = label.rstrip()[label.rindex("(") + 1:-1].strip()
        return inner or None
    return None


def _converter(axis):
    """The units converter of an axis (``None`` for plain numbers)."""
    return axis.get_converter() if hasattr(axis, "get_converter") else axis.converter


def _axis_values(axis):
    """``(is_date, write)``: whether the axis is one of dates, and how a value plotted along it is
    written in the record: a number, or on a date axis an ISO-8601 string of the date it shows."""
    converter = _converter(axis)
    freq = _period_freq(axis, converter)
    if freq is not None:
        return True, lambda value: _period_date(value, freq)
    if _is_date_converter(converter):
        tz = _date_tz(axis)
        return True, lambda value: _date(value, tz)
    return False, _number


def _is_date_converter(converter):
    if converter is None:
        return False
    dates = sys.modules.get("matplotlib.dates")
    return dates is not None and isinstance(converter, (dates.DateConverter, dates.ConciseDateConverter,
                                                        getattr(dates, "_SwitchableDateConverter", dates.DateConverter)))


def _number(value):
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    if value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return float(f"{value:.12g}")  # 1.2, not 1.2000000000000002 (tick arithmetic noise)


def _date_tz(axis):
    """The time zone of a matplotlib date axis: that of the aware dates plotted on it (matplotlib
    keeps it as the axis's units and labels the ticks in it), else ``None`` (naive dates)."""
    import datetime
    units = axis.get_units()
    return units if isinstance(units, (str, datetime.tzinfo)) else None


def _date(value, tz):
    """A matplotlib date number as ISO-8601: the local time of ``tz`` with its offset, or without
    a time zone (naive dates plotted) the date and time they were."""
    from matplotlib.dates import num2date
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    if tz is None:
        return num2date(value).replace(tzinfo=None).isoformat()
    return num2date(value, tz=tz).isoformat()


def _period_freq(axis, converter):
    """The frequency of a pandas time-series axis (``PeriodConverter``: what ``Series.plot`` and
    ``plot.bar`` of a ``PeriodIndex``, or of a ``DatetimeIndex`` with a frequency, draw on), whose
    values are period ordinals in units of it (months since 1970 for ``'M'``); else ``None``."""
    module = sys.modules.get("pandas.plotting._matplotlib.converter")
    period_converter = getattr(module, "PeriodConverter", None)
    if period_converter is None or not isinstance(converter, period_converter):
        return None
    return getattr(axis, "freq", None) or getattr(axis.axes, "freq", None)


def _period_date(value, freq):
    """A pandas period ordinal of ``freq`` as ISO-8601: the start of its period (a value between
    two ordinals, as the ends of a reference line across the axes, that far between their starts).
    pandas drops a time zone when it plots periods: the time is the wall time the axis shows,
    without offset."""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    ordinal = math.floor(value)
    start = _period_start(ordinal, freq)
    if value != ordinal:
        start += (_period_start(ordinal + 1, freq) - start) * (value - ordinal)
    return start.isoformat()


def _period_start(ordinal, freq):
    """The ``pandas.Timestamp`` a period ordinal of ``freq`` starts at. A business-daily axis of a
    pandas that counts business days itself (``bday_to_datetime``: its ``Period`` of ``'B'`` is
    deprecated) is read with that count."""
    pandas = sys.modules["pandas"]  # the axis is pandas': pandas is imported
    converter = sys.modules["pandas.plotting._matplotlib.converter"]
    business_day = getattr(converter, "bday_to_datetime", None)
    if business_day is not None and isinstance(
            pandas.tseries.frequencies.to_offset(freq, is_period=True), pandas.offsets.BusinessDay):
        return pandas.Timestamp(business_day(ordinal))
    return pandas.Period(ordinal=ordinal, freq=freq).to_timestamp()


def _axes_chart(ax):
    from matplotlib.container import BarContainer
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Wedge

    if _is_3d(ax):
        return _chart("unknown", ax)
    boxes = [line for line in ax.get_lines() if hasattr(line, "_pykernel_box")]
    if boxes:
        return _box(ax, boxes)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    errorbar_labels, caps = _errorbars(ax)
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) and id(line) not in caps]
    if wedges and not bars:
        return _pie(ax, wedges)
    if bars and not scatters:
        return _bar(ax, bars)
    if scatters and not bars and not lines:
        return _scatter(ax, scatters)
    if lines and not bars and not scatters:
        return _line(ax, lines, errorbar_labels)
    return _chart("unknown", ax)


def _is_3d(ax):
    """Whether ``ax`` is 3-D axes (``projection='3d'``): its artists hold the 2-D projection they
    were last drawn at, not data coordinates, and the record has no z axis. (The axes of every
    other projection hold their data: a polar line's angles and radii.)"""
    axes3d = sys.modules.get("mpl_toolkits.mplot3d.axes3d")
    return axes3d is not None and isinstance(ax, axes3d.Axes3D)


def _errorbars(ax):
    """``({id(line): label}, {id(cap line)})`` of the axes' error bars (``errorbar``): the label is
    the container's (its data line has none), and the caps of the bars are no lines of data."""
    from matplotlib.container import ErrorbarContainer
    labels, caps = {}, set()
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            data_line, caplines, _bars = container.lines
            if data_line is not None:
                labels[id(data_line)] = container.get_label()
            caps.update(id(cap) for cap in caplines)
    return labels, caps


def _converted(ax, axis, values):
    """Plotted (already converted) values: numbers, or ISO strings on a date axis."""
    _, write = _axis_values(ax.xaxis if axis == "x" else ax.yaxis)
    return [write(v) for v in values]


def _line(ax, lines, errorbar_labels):
    chart = _chart("line", ax)
    for line in lines:
        xs, ys = _data_coordinates(ax, line)
        xs, ys = _converted(ax, "x", xs), _converted(ax, "y", ys)
        label = _label(errorbar_labels.get(id(line))) or _label(line.get_label())
        chart["elements"].append({"label": label, "points": [[x, y] for x, y in zip(xs, ys)]})
    return chart


def _data_coordinates(ax, line):
    """A line's x and y values in data coordinates. A line drawn in axes coordinates, wholly or
    along one axis (``axhline``, ``axvline``: x or y from 0 to 1 across the axes), has those
    values mapped to the data the axes show there: the ends of its view limits."""
    xs, ys = line.get_xdata(orig=False), line.get_ydata(orig=False)
    transform = line.get_transform()
    if transform.contains_branch(ax.transData):
        return list(xs), list(ys)
    import numpy
    points = (transform - ax.transData).transform(numpy.column_stack([numpy.asarray(xs, float), numpy.asarray(ys, float)]))
    return list(points[:, 0]), list(points[:, 1])


def _scatter(ax, collections):
    chart = _chart("scatter", ax)
    for collection in collections:
        offsets = collection.get_offsets()
        xs = _converted(ax, "x", [row[0] for row in offsets])
        ys = _converted(ax, "y", [row[1] for row in offsets])
        chart["elements"].append({"label": _label(collection.get_label()), "points": [[x, y] for x, y in zip(xs, ys)]})
    return chart


def _bar(ax, containers):
    chart = _chart("bar", ax)
    for container in containers:
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        # A histogram labels its datasets on their first bar, not on the container.
        group = _label(container.get_label()) or (_label(container.patches[0].get_label()) if container.patches else None)
        centers, values = [], []
        for patch in container.patches:
            if horizontal:
                centers.append(patch.get_y() + patch.get_height() / 2)
                values.append(patch.get_width())
            else:
                centers.append(patch.get_x() + patch.get_width() / 2)
                values.append(patch.get_height())
        labels = _bar_labels(ax.yaxis if horizontal else ax.xaxis, centers)
        for label, value in zip(labels, values):
            chart["elements"].append({"label": label, "group": group, "value": _number(value)})
    return chart


def _bar_labels(axis, centers):
    """The labels of bars centred at ``centers`` along ``axis``: their categories on an axis of
    categories; on a date axis their dates (ISO-8601); else (a numeric axis: a histogram's bins sit
    between ticks, and the nearest tick's number was shared by two bins) their centres as numbers.

    An axis is one of categories when matplotlib's category units map the strings plotted
    (``plt.bar(['2020', '2021'], ...)``: the category at each bar's position), or when its tick
    labels name things: given for the ticks, one tick per bar of a series (``plt.xticks(x, names)``,
    pandas' bar plots of any index, numbers too: the nearest tick's label), or not numbers (the
    text of a log axis's ``10^0`` is a number)."""
    categories = _categories(axis)
    if categories:
        nearest = [min(categories, key=lambda position: abs(position - center)) for center in centers]
        return [categories[position] for position in nearest]
    positions, labels = _ticks(axis)
    is_date, write = _axis_values(axis)
    if positions and labels and len(positions) == len(labels):
        nearest = [min(range(len(positions)), key=lambda i: abs(positions[i] - center)) for center in centers]
        # Labels given for the ticks, one per bar (not a histogram's few ticks among its bins).
        given = _labels_given(axis) and len(set(nearest)) == len(nearest) == len(positions)
        if given or not (is_date or all(_is_number(label) for label in labels if label)):
            return [labels[index] or str(_number(center)) for index, center in zip(nearest, centers)]
    if is_date:
        return [write(center) for center in centers]
    return [str(_number(center)) for center in centers]


def _categories(axis):
    """``{position: category}`` of an axis with matplotlib's category units, else ``{}``."""
    category = sys.modules.get("matplotlib.category")
    converter = _converter(axis)
    if category is None or not isinstance(converter, category.StrCategoryConverter):
        return {}
    mapping = getattr(axis.units, "_mapping", None) or {}
    return {position: str(name) for name, position in mapping.items()}


def _labels_given(axis):
    """Whether the axis's tick labels were given rather than numbers formatted (``set_xticklabels``
    and ``plt.xticks(x, names)`` make a ``FixedFormatter``, pandas' bar plots a ``FuncFormatter``
    over their index)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter
    return (isinstance(axis.get_major_locator(), FixedLocator)
            and isinstance(axis.get_major_formatter(), (FixedFormatter, FuncFormatter)))


def _is_number(text):
    """Whether a tick label is a number as matplotlib's formatters write one (``−0.2``, ``1e3``, a
    log axis's ``10^-1`` and ``2×10^1``)."""
    import re
    text = text.replace("\u2212", "-")
    power = re.fullmatch(r"(?:(.+)\u00d7)?(-?[0-9.]+)\^(-?[0-9.]+)", text)
    parts = [part for part in power.groups() if part is not None] if power else [text]
    try:
        for part in parts:
            float(part)
    except ValueError:
        return False
    return True


def _pie(ax, wedges):
    """One element per wedge: its label is its own (``labels=``), else the first text drawn on it
    (``pie_label``, ``autopct``'s percentage): pie places a wedge's texts at its middle angle, seen
    from its centre (an exploded wedge's too)."""
    chart = _chart("pie", ax)
    for wedge in wedges:
        label = _label(wedge.get_label()) or next(
            (text.get_text() for text in ax.texts if text.get_text() and _on_middle_of(text, wedge, ax)), None)
        chart["elements"].append({"label": label, "angle": _number(wedge.theta2 - wedge.theta1),
                                  "radius": _number(wedge.r)})
    return chart


def _on_middle_of(text, wedge, ax):
    """Whether a text (in data coordinates) sits on the ray from the wedge's centre through the
    middle of its arc, away from the centre."""
    if text.get_transform() != ax.transData:
        return False
    x, y = text.get_position()
    dx, dy = float(x) - wedge.center[0], float(y) - wedge.center[1]
    if math.hypot(dx, dy) < 1e-9 * max(wedge.r, 1e-300):
        return False
    middle = math.radians((wedge.theta1 + wedge.theta2) / 2)
    return abs(math.remainder(math.atan2(dy, dx) - middle, 2 * math.pi)) < 1e-6


def _box(ax, medians):
    """One element per box, from the statistics kept on its median line. The box's orientation
    and position are its median's (a vertical box's median is a horizontal line); without a label
    of its own, the box is labelled by the tick at its position."""
    chart = _chart("box_and_whisker", ax)
    for median in medians:
        stats = median._pykernel_box
        label = stats.get("label")
        if label is None:
            label = _box_tick_label(ax, median)
        chart["elements"].append({
            "label": None if label is None else str(label),
            "min": _number(stats["whislo"]), "first_quartile": _number(stats["q1"]),
            "median": _number(stats["med"]), "third_quartile": _number(stats["q3"]),
            "max": _number(stats["whishi"]), "outliers": [_number(v) for v in stats.get("fliers", [])]})
    return chart


def _box_tick_label(ax, median):
    """The label of the tick at a box's position, within half its width; else ``None``."""
    xs, ys = median.get_xdata(orig=False), median.get_ydata(orig=False)
    if len(xs) < 2 or len(ys) < 2:
        return None
    vertical = ys[0] == ys[-1]
    along = xs if vertical else ys
    position, half = (float(along[0]) + float(along[-1])) / 2, abs(float(along[-1]) - float(along[0])) / 2
    axis = ax.xaxis if vertical else ax.yaxis
    ticks = [(abs(tick - position), label) for tick, label in zip(*_ticks(axis))]
    distance, label = min(ticks, default=(None, None), key=lambda tick: tick[0])
    return (label or None) if distance is not None and distance <= half else None


def _label(label):
    return None if not label or label.startswith("_") else label


def install():
    """Defines the backend module and makes it matplotlib's default once matplotlib is imported
    (when the user chose no backend), each context's backend and figures its own."""
    _install_backend_module()
    after_import("matplotlib", _matplotlib_imported)
    after_import("matplotlib.pyplot", _pyplot_backend_per_context)
