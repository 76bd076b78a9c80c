"""Rich results: the value of a cell's last expression and ``display()``, as MIME bundles.

The engine calls ``last_expression`` for a cell whose bytecode may end with an expression
statement, evaluates what it returns, and hands a value that is not ``None`` to ``main_result``
(a value of one of the exact types of ``_PLAIN_TYPES`` is shown natively, the same way).
Bundles reach the engine through the native ``_emit`` (set at start-up), in order with output.
"""

import __future__
import ast
import base64
import builtins
import contextlib
import io
import json
import os
import sys
from types import CodeType

_ENGINE_FILENAME_PREFIX = "<pykernel/"
_emit = None  # set by the engine: _emit((is_main_result, {mime: str}, metadata_json, chart_json))

_POP_TOP = 1
_LOAD_CONST = 100
_RETURN_VALUE = 83
_EXTENDED_ARG = 144
# Cells are compiled with top-level await allowed (their code is a coroutine's when they use it).
_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
# The flags of the ``from __future__`` features (PyCF_MASK): a cell is compiled with those of its
# context's earlier cells, so its code has them (``barry_as_FLUFL`` changes what parses).
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag
del _name


def last_expression(source, filename, code):
    """How to run a cell that ends with an expression statement whose value is shown (not
    ended by ``;``): ``(code, None)`` where ``code`` is the cell's compiled ``code`` returning that
    value instead of dropping it, or ``(body, expression)`` to evaluate one after the other.
    ``None`` when the cell's value is not shown (run ``code`` as it is).

    Patching the compiled code keeps every instruction, line and column where it was, so
    tracebacks are exactly those of the unchanged cell and nothing is compiled twice.
    """
    flags = _TOP_LEVEL_AWAIT | (code.co_flags & _FUTURE_FLAGS)
    try:
        tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | flags, dont_inherit=True)
    except BaseException:  # it compiled already: a parse failure here is ours, run it as it is
        return None
    body = tree.body
    if not body or type(body[-1]) is not ast.Expr:
        return None
    statement = body[-1]
    if _suppressed(source, statement):
        return None
    patched = _returning_last_value(code, statement)
    if patched is not None:
        return patched, None
    value = statement.value
    if _is_literal(value):
        # Constant folding compiled the statement to nothing: the value has no side effect,
        # evaluate it on its own after the cell.
        expression = compile(ast.Expression(value), filename, "eval", flags, dont_inherit=True)
        return code, expression
    # Not found in the bytecode (not expected): compile the body and the expression apart.
    tree.body = body[:-1]
    return (compile(tree, filename, "exec", flags, dont_inherit=True),
            compile(ast.Expression(value), filename, "eval", flags, dont_inherit=True))


def _suppressed(source, statement):
    """Whether the statement is followed by ``;`` on its line, or on the lines a backslash
    continues it on (IPython's way to hide a value)."""
    lines = io.StringIO(source, newline=None).readlines()  # the compiler's lines (not at \f, U+2028...)
    if statement.end_lineno > len(lines):
        return False
    rest = b"".join(line.encode("utf-8", "surrogatepass") for line in lines[statement.end_lineno - 1:])
    rest = rest[statement.end_col_offset:]
    while True:
        rest = rest.lstrip(b" \t")
        if not rest.startswith(b"\\\n"):
            return rest.startswith(b";")
        rest = rest[2:]


def _returning_last_value(code, statement):
    """``code`` with the ``POP_TOP`` of the final expression statement replaced by
    ``RETURN_VALUE`` on every way out of the cell, or ``None`` when the bytecode is not as
    expected. Each ``RETURN_VALUE`` of a module is its implicit ``return None``: the compiler
    copies the end of the cell, ``POP_TOP; LOAD_CONST None; RETURN_VALUE``, onto each branch of
    ``a and b``, ``a if c else b``, ``0 < a < 3``..., each copy at the position of the last
    instruction of its branch, inside the statement."""
    raw = code.co_code
    positions = list(code.co_positions())
    first = (statement.lineno, statement.col_offset)
    last = (statement.end_lineno, statement.end_col_offset)
    pops = []
    for offset in range(0, len(raw), 2):
        if raw[offset] != _RETURN_VALUE:
            continue
        load = offset - 2
        pop = _before(raw, load)
        if (load < 0 or raw[load] != _LOAD_CONST or pop < 0 or raw[pop] != _POP_TOP
                or code.co_consts[_argument(raw, load)] is not None):
            return None
        line, end_line, column, end_column = positions[pop // 2]
        if None in (line, end_line, column, end_column) or not first <= (line, column) <= (end_line, end_column) <= last:
            return None
        pops.append(pop)
    if not pops:
        return None
    patched = bytearray(raw)
    for pop in pops:
        patched[pop] = _RETURN_VALUE
        patched[pop + 1] = 0
    return code.replace(co_code=bytes(patched))


def _before(raw, offset):
    """The offset of the instruction before the one at ``offset``, past its ``EXTENDED_ARG``s."""
    offset -= 2
    while offset >= 0 and raw[offset] == _EXTENDED_ARG:
        offset -= 2
    return offset


def _argument(raw, offset):
    """The argument of the instruction at ``offset``, with its ``EXTENDED_ARG``s."""
    value, shift = raw[offset + 1], 8
    offset -= 2
    while offset >= 0 and raw[offset] == _EXTENDED_ARG:
        value |= raw[offset + 1] << shift
        shift += 8
        offset -= 2
    return value


_LITERAL_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.operator, ast.unaryop,
                  ast.Load)


def _is_literal(node):
    """Whether an expression is made of constants and operators only (what the compiler folds)."""
    return all(isinstance(child, _LITERAL_NODES) for child in ast.walk(node))


def main_result(value):
    """Shows the cell's value (the engine has bound it to ``_``): emits it as the main result (a
    value with ``_ipython_display_`` shows itself instead: what it displays are not main
    results). Returns the exception a raising ``__repr__`` raised (without this module's
    frames), else ``None``."""
    try:
        _emit_bundle(value, True)
    except BaseException as error:
        return _without_engine_frames(error)
    return None


# Exact types whose bundle is their repr (no representation method, never a figure); the engine
# shows a main result of one of them natively (`PlainMainResults`, which reads this set).
_PLAIN_TYPES = frozenset((int, float, bool, str, bytes, list, tuple, dict, set, frozenset,
                          complex, type(None), range))

_REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_pdf_", "application/pdf"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
)
_BINARY = frozenset(("image/png", "image/jpeg", "application/pdf"))
# What each `_repr_*_` method may return, as IPython's formatters check it (another type is left
# out with a line on stderr, as IPython warns): bytes or base64 text for binary formats, a list
# or dict for JSON, text for the rest.
_RETURN_TYPES = {"image/png": (bytes, str), "image/jpeg": (bytes, str), "application/pdf": (bytes, str),
                 "application/json": (list, dict)}


def _emit_bundle(obj, is_main):
    if type(obj) in _PLAIN_TYPES:  # no representation method to look for
        _emit((is_main, {"text/plain": repr(obj)}, None, None))
        return
    if _displayed_itself(obj):
        return
    if "matplotlib.figure" in sys.modules:
        charts = sys.modules["pykernel_charts"]
        if charts.is_figure(obj):
            if is_main:
                charts.figure_result(obj)  # one result; the figure is closed
            else:
                charts.emit_figure(obj, is_main=False)
            return
    data, metadata = bundle(obj)
    _emit((is_main, data, _metadata_json(obj, metadata), None))


def _displayed_itself(obj):
    """Whether the object showed itself: as IPython, an object's ``_ipython_display_()`` is
    called instead of formatting it (it calls ``display()`` with what it shows, maybe nothing),
    before any ``_repr_*_``. One that raises is formatted as usual, with a line on stderr (one
    raising ``NotImplementedError`` without it, as IPython)."""
    if _claims_every_attribute(obj):
        return False
    method = _representation(obj, "_ipython_display_")
    if method is None:
        return False
    try:
        method()
    except NotImplementedError:
        return False
    except Exception as error:  # as IPython's formatters: an interrupt stops the display
        sys.stderr.write(f"{type(obj).__name__}._ipython_display_() raised {type(error).__name__}: {error}; "
                         "the object is shown from its representations\n")
        return False
    return True


def bundle(obj, include=None, exclude=None):
    """``({mime: str}, metadata)`` of an object, as Jupyter would show it (``include`` and
    ``exclude`` are passed on to its ``_repr_mimebundle_``). An object that claims every
    attribute (a ``Mock``, a proxy) is shown as its ``repr``: as IPython, its representation
    methods are not called (they would record calls on a mock and make up images)."""
    data = {}
    metadata = {}
    if _claims_every_attribute(obj):
        return {"text/plain": repr(obj)}, metadata
    method = _representation(obj, "_repr_mimebundle_")
    if method is not None:
        try:
            produced = method(include=include, exclude=exclude)
        except Exception as error:  # as IPython's formatters: an interrupt stops the display
            _report(obj, "_repr_mimebundle_", error)
        else:
            returned = produced
            if isinstance(produced, tuple) and len(produced) == 2:
                produced, extra = produced
                if isinstance(extra, dict):
                    metadata.update(extra)
                elif extra is not None:  # the data is kept
                    sys.stderr.write(f"{type(obj).__name__}._repr_mimebundle_() returned {type(extra).__name__} as its "
                                     "metadata, not dict; that metadata is left out\n")
            if produced is not None and not isinstance(produced, dict):  # as IPython refuses it
                _report_invalid(obj, "_repr_mimebundle_", f"returned {_shape(returned)}, not a dict or a (dict, dict) pair")
            elif isinstance(produced, dict):
                for mime, value in produced.items():
                    converted = _convert(mime, value)
                    if converted is not None:
                        data[str(mime)] = converted
                    elif value is not None:
                        _report_invalid(obj, "_repr_mimebundle_", f"returned {_unfit(mime, value)} for {mime}")
    for name, mime in _REPR_METHODS:
        if mime in data:
            continue
        method = _representation(obj, name)
        if method is None:
            continue
        try:
            value = method()
        except Exception as error:  # as IPython's formatters: an interrupt stops the display
            _report(obj, name, error)
            continue
        extra = None
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            value, extra = value
        if value is None:
            continue
        expected = _RETURN_TYPES.get(mime, (str,))
        if not isinstance(value, expected):
            _report_invalid(obj, name, f"returned {type(value).__name__}, not "
                            + " or ".join(kind.__name__ for kind in expected))
            continue
        converted = _convert(mime, value)
        if converted is None:
            _report_invalid(obj, name, f"returned {_unfit(mime, value)}")
            continue
        data[mime] = converted
        if extra is not None:
            metadata[mime] = extra
    if "text/plain" not in data:
        data["text/plain"] = _plain_text(obj)  # a raising __repr__ makes the run an error
    # The metadata of a representation left out (or never made) goes with it.
    return data, {key: value for key, value in metadata.items() if "/" not in key or key in data}


def _shape(value):
    """What a ``_repr_mimebundle_`` returned, for a line on stderr: ``list``, ``a (list, dict)
    pair``, ``a tuple of 3 items``."""
    if not isinstance(value, tuple):
        return type(value).__name__
    if len(value) == 2:
        return f"a ({type(value[0]).__name__}, {type(value[1]).__name__}) pair"
    return f"a tuple of {len(value)} item{'' if len(value) == 1 else 's'}"


def _plain_text(obj):
    """An object's ``text/plain``, as IPython's formatter makes it: what its ``_repr_pretty_``
    prints when its class (or the nearest one in its MRO defining either) defines that method
    rather than ``__repr__``, else its ``repr``. IPython's pretty printer prints it when IPython
    can be imported (lines cut at 79 columns), else a printer of the same interface on one line.
    One that raises is left out with a line on stderr (the ``repr`` is used)."""
    if not _has_pretty_method(type(obj)):
        return repr(obj)
    try:
        try:
            from IPython.lib.pretty import pretty
        except ImportError:
            return _OneLinePrinter().printed(obj)
        return pretty(obj)
    except Exception as error:  # as IPython's formatters: an interrupt stops the display
        _report(obj, "_repr_pretty_", error)
        return repr(obj)


def _has_pretty_method(cls):
    """Whether IPython's pretty printer would call ``cls._repr_pretty_`` (the first class of the
    MRO defining ``_repr_pretty_`` or ``__repr__`` defines ``_repr_pretty_``)."""
    for klass in cls.__mro__:
        if "_repr_pretty_" in klass.__dict__:
            return callable(getattr(cls, "_repr_pretty_", None))
        if klass is not object and "__repr__" in klass.__dict__:
            return False
    return False


class _OneLinePrinter:
    """The interface of IPython's ``RepresentationPrinter`` that ``_repr_pretty_`` methods use
    (``text``, ``breakable``, ``pretty``, ``group``...), printing on one line: a breakable is its
    separator, a forced break a new line."""

    def __init__(self):
        self._parts = []
        self._shown = []  # the ids of the objects being printed, to tell a cycle

    def printed(self, obj):
        self.pretty(obj)
        return "".join(self._parts)

    def pretty(self, obj):
        if not _has_pretty_method(type(obj)):
            self._parts.append(repr(obj))
            return
        cycle = id(obj) in self._shown
        self._shown.append(id(obj))
        try:
            type(obj)._repr_pretty_(obj, self, cycle)
        finally:
            self._shown.pop()

    def text(self, obj):
        self._parts.append(obj)

    def breakable(self, sep=" "):
        self._parts.append(sep)

    def break_(self):
        self._parts.append("\n")

    def begin_group(self, indent=0, open=""):
        self._parts.append(open)

    def end_group(self, dedent=0, close=""):
        self._parts.append(close)

    @contextlib.contextmanager
    def group(self, indent=0, open="", close=""):
        self.begin_group(indent, open)
        try:
            yield
        finally:
            self.end_group(indent, close)

    @contextlib.contextmanager
    def indent(self, indent):
        yield

    def flush(self):
        pass


def _claims_every_attribute(obj):
    """Whether ``obj`` answers an attribute no object has with something callable (IPython's
    ``_ipython_canary_method_should_not_exist_`` test)."""
    if isinstance(obj, type):
        return False
    try:
        return callable(getattr(obj, "_ipython_canary_method_should_not_exist_", None))
    except Exception:
        return False


def _representation(obj, name):
    """The object's bound method ``name``, or ``None`` (classes themselves show as their repr)."""
    if isinstance(obj, type):
        return None
    try:
        method = getattr(obj, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def _is_json_type(mime):
    """Whether the wire carries a representation of this MIME type as a JSON value (not text):
    ``application/json`` and every ``...+json`` type (plotly's, vega's, GeoJSON's), as Jupyter."""
    return mime == "application/json" or str(mime).endswith("+json")


def _convert(mime, value):
    """A representation as the wire carries it (``None``: leave it out): a JSON type's value as
    its JSON text (what JSON cannot hold, a set or another object, NaN, leaves it out), bytes
    as base64, text as it is. Another value under a type that is not JSON (a dict under
    ``application/x-custom``) is left out: Jupyter's other types are text."""
    if value is None:
        return None
    if _is_json_type(mime):
        try:
            return json.dumps(value, allow_nan=False)
        except Exception:  # a stop (KeyboardInterrupt) goes on
            return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if mime in _BINARY and isinstance(value, str):
        # Already base64, as IPython takes it; the line breaks of `base64.encodebytes` and of
        # notebooks' stored images are dropped, so the wire carries one base64 string.
        value = value.translate(_BASE64_SPACE)
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            return None
        return value
    return value if isinstance(value, str) else None


_BASE64_SPACE = dict.fromkeys(map(ord, " \t\n\r\f\v"))


def _unfit(mime, value):
    """What a representation ``_convert`` left out is (the line on stderr says why)."""
    if _is_json_type(mime):
        return _NOT_JSON
    if mime in _BINARY and isinstance(value, str):
        return "text that is not base64"
    return f"{type(value).__name__}, not str,"


def _strings(bundle, caller):
    """A bundle the code made itself (``display(..., raw=True)``, ``publish_display_data``), as
    the wire carries it; a representation left out gets a line on stderr."""
    converted = {}
    for mime, value in bundle.items():
        text = _convert(mime, value)
        if text is not None:
            converted[str(mime)] = text
        elif value is not None:
            sys.stderr.write(f"{caller}() got {_unfit(mime, value)} for {mime}; that representation is left out\n")
    return converted


def _report(obj, name, error):
    """One line on stderr for a representation method that raised (it is left out)."""
    sys.stderr.write(f"{type(obj).__name__}.{name}() raised {type(error).__name__}: {error}; "
                     "that representation is left out\n")


def _metadata_json(obj, metadata):
    """The metadata as JSON, or ``None``: metadata JSON cannot hold (an object, NaN) is left out
    with a line on stderr (it made the run an error, with the json module's frames)."""
    if not metadata:
        return None
    try:
        return json.dumps(metadata, allow_nan=False)
    except Exception as error:  # a stop (KeyboardInterrupt) goes on
        sys.stderr.write(f"the metadata of a {type(obj).__name__} result is not JSON ({type(error).__name__}: {error}); "
                         "it is left out\n")
        return None


_NOT_JSON = "a value that is not JSON (NaN, an infinity, a set or another object JSON cannot hold, such a key, or nesting too deep)"


def _report_invalid(obj, name, reason):
    """One line on stderr for a representation method whose value cannot be shown (it is left out)."""
    sys.stderr.write(f"{type(obj).__name__}.{name}() {reason}; that representation is left out\n")


def _without_engine_frames(error):
    # The traceback read and set as python3's C code does, never through the attribute access the
    # exception's class may customise (a ``__getattribute__`` that raises).
    tb = BaseException.__traceback__.__get__(error)
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_ENGINE_FILENAME_PREFIX):
        tb = tb.tb_next
    BaseException.__traceback__.__set__(error, tb)
    return error


def display(*objs, include=None, exclude=None, metadata=None, raw=False, display_id=None, **kwargs):
    """Shows each object as a rich result (``text/plain`` is its ``repr``, plus every
    representation it offers: ``_repr_html_``, ``_repr_png_``, ``_repr_mimebundle_``, ...), as
    IPython's ``display`` does in Jupyter (it is IPython's too once ``IPython.display`` is
    imported: outside a shell IPython would print the ``repr``); an object with
    ``_ipython_display_`` is shown by calling it instead. ``include``/``exclude`` are
    passed to ``_repr_mimebundle_`` and filter the MIME types, ``metadata`` is merged into each
    result's (as IPython merges it: over the representations' own, dicts key by key),
    ``raw=True`` takes dicts as bundles. ``display_id=True`` (or an id) returns a
    :class:`DisplayHandle`, as IPython does; results are never replaced on the wire, so updating
    it (``update_display``) adds the new object as one more result. ``transient`` and ``clear``
    are ignored."""
    for obj in objs:
        chart = None
        if raw and isinstance(obj, dict):
            data, extra = _strings(obj, "display"), {}
        elif type(obj) in _PLAIN_TYPES:  # no representation method to look for
            data, extra = {"text/plain": repr(obj)}, {}
        elif _displayed_itself(obj):
            continue
        elif _is_figure(obj):
            data, chart = _figure_bundle(obj)
            extra = {}
        else:
            data, extra = bundle(obj, include, exclude)
        if include is not None:
            data = {mime: value for mime, value in data.items() if mime in include or mime == "text/plain"}
        if exclude is not None:
            data = {mime: value for mime, value in data.items() if mime not in exclude or mime == "text/plain"}
        if extra:  # the metadata of a type left out goes with it
            extra = {key: value for key, value in extra.items() if "/" not in key or key in data}
        if metadata and isinstance(metadata, dict):  # IPython ignores metadata that is no dict
            extra = _merged(extra, metadata)
        _emit((False, data, _metadata_json(obj, extra) if extra else None, chart))
    if display_id:
        return DisplayHandle(None if display_id is True else display_id)
    return None


class DisplayHandle:
    """What ``display(..., display_id=True)`` returns, as IPython's ``DisplayHandle``. The wire
    has no display updates: ``display(obj)`` and ``update(obj)`` both show ``obj`` as one more
    result (a client showing results in order shows the latest last)."""

    def __init__(self, display_id=None):
        self.display_id = os.urandom(16).hex() if display_id is None else display_id

    def __repr__(self):
        return f"<{type(self).__name__} display_id={self.display_id}>"

    def display(self, obj, **kwargs):
        """Shows ``obj`` as a new result (``display(obj, **kwargs)``)."""
        display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj, **kwargs):
        """Shows ``obj`` as a new result: what the display shows now (nothing is replaced)."""
        display(obj, display_id=self.display_id, **kwargs)


def _figure_bundle(figure):
    """A matplotlib figure's ``image/png`` and ``text/plain``, and its chart record as JSON."""
    data, chart = sys.modules["pykernel_charts"].figure_bundle(figure)
    return data, json.dumps(chart, allow_nan=False, default=str)


def _merged(metadata, extra):
    """IPython's ``_merge``: ``extra`` over ``metadata``, dicts merged key by key (neither is
    changed)."""
    if not isinstance(extra, dict) or not isinstance(metadata, dict):
        return extra
    merged = dict(metadata)
    for key, value in extra.items():
        merged[key] = _merged(merged.get(key), value)
    return merged


def _publish_display_data(data, metadata=None, *args, **kwargs):
    """IPython's ``publish_display_data``: a MIME bundle (and its metadata) as one result."""
    _emit((False, _strings(data, "publish_display_data"), _metadata_json(data, metadata), None))


def _is_figure(obj):
    return "matplotlib.figure" in sys.modules and sys.modules["pykernel_charts"].is_figure(obj)


def clear_output(wait=False):
    """IPython's ``clear_output``: nothing, as results and output are never cleared on the wire
    (outside a shell IPython would write ANSI line-clearing codes into stdout and stderr, which a
    progress loop written for Jupyter would fill its output with)."""


def _emit_from_ipython(module):
    """Makes the ``display`` and ``publish_display_data`` of IPython's display module just
    imported emit results (``from IPython.display import display, HTML, Markdown, Image, JSON``
    then works as in Jupyter), and its ``clear_output`` do nothing."""
    if hasattr(module, "display"):
        module.display = display
    if hasattr(module, "publish_display_data"):
        module.publish_display_data = _publish_display_data
    if hasattr(module, "clear_output"):
        module.clear_output = clear_output


def install(emit):
    """Sets the native emitter, makes ``display`` a builtin, and IPython's display emit results."""
    global _emit
    _emit = emit
    display.__module__ = "builtins"
    builtins.display = display
    from pykernel_charts import after_import
    after_import(("IPython.core.display_functions", "IPython.core.display"), _emit_from_ipython)
