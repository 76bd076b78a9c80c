"""Format exceptions exactly like CPython 3.11's interpreter does at exit.

PyKernel runs each cell with ``exec(compile(src, "<cell-N>", "exec"), ns)``.
When a cell fails, the kernel shows the text that ``python3.11 file.py``
prints on stderr for the same source, with ``File "<cell-N>"`` in place of
the file's path.

Why not ``traceback.format_exception``?  In 3.11 the interpreter does not use
Lib/traceback.py: ``sys.__excepthook__`` is ``PyErr_Display`` in
Python/pythonrun.c, which prints frames with Python/traceback.c, and the two
differ ("Did you mean" suggestions, trailing whitespace of source lines,
"<exception str() failed>", no notes for SyntaxError, margins in exception
groups, ...).  Why not call ``sys.__excepthook__`` itself?  It never reads
linecache and does not open ``<...>`` names, so a cell's frames would have
no source lines; and borrowing just its last line would mean mutating the
exception (chain, notes, traceback -- NameError suggestions need the frames)
and calling ``str()`` twice.

So this module is a line-by-line port of the 3.11.2 C printer; each function
names the C function it mirrors.  Deliberate changes, to show a cell as if
it were a file:

* a frame or SyntaxError of a ``<...>`` file takes its source line from the
  source the host registered for the cell (``registered_source``: the
  engine's cells, never an entry user code put in linecache); real files are
  read like display_source_line_with_margin does;
* a SyntaxError from compiling a registered cell is reported with the text
  and offsets the parser gives for a file (see _as_if_parsed_from_file);
* ``SystemExit`` is formatted like any other exception (traceback +
  ``SystemExit: 3``); the interpreter prints nothing for ``SystemExit(int)``
  and only ``str(code)`` otherwise, as it exits (_Py_HandleSystemExit).

Known, unavoidable differences:

* Where the C printer itself fails (a non-str ``SyntaxError.text``, a
  ``__notes__`` that fails only when read a second time, a chain nested
  deeper than the recursion limit lets it: ~997 exceptions for an uncaught
  one, fewer under the code's frames, see _room) CPython dumps the object
  on the C-level stderr ("lost sys.stderr"); here the text printed so far
  is returned, followed by ``traceback.format_exception_only``'s line.  Up
  to that limit a chain is printed whole, as the C printer does, with the
  source lines it drops at its edge dropped too.
* ``AttributeError.obj`` unset (NULL) and ``None`` look alike from Python;
  ``None`` is taken as the object ``None`` (``None.x``).
"""

import ast
import builtins
import io
import itertools
import linecache
import os
import re
import sys
import tokenize

__all__ = ["format_exception", "format_exception_and_value", "format_thread_exception",
           "format_unraisable", "exception_name", "exception_value"]

# Python/traceback.c and Include/internal/pycore_traceback.h
_TB_HEADER = "Traceback (most recent call last):\n"
_GROUP_TB_HEADER = "Exception Group Traceback (most recent call last):\n"
_TB_RECURSIVE_CUTOFF = 3
_TB_LIMIT_DEFAULT = 1000            # PyTraceBack_LIMIT
_LONG_MAX = 2 ** 63 - 1
_SOURCE_LINE_INDENT = 4             # _TRACEBACK_SOURCE_LINE_INDENT
_WHITESPACE = b" \t\f"              # IS_WHITESPACE

# How the filenames of the engine's code start, and this module's (its frames,
# and the engine's, are not the code's: see _room).
_ENGINE_PREFIX = "<pykernel/"
_OWN_FILENAME = sys._getframe().f_code.co_filename
# The calls of a write on python3's sys.stderr: its text layer's, its buffer's
# and its file's (the buffer is the file under -u, PYTHONUNBUFFERED: the
# engine's python3 is the one its environment would start).
_WRITE_CALLS = 2 if os.environ.get("PYTHONUNBUFFERED") else 3

# Python/pythonrun.c
_CAUSE_MESSAGE = ("The above exception was the direct cause "
                  "of the following exception:\n")
_CONTEXT_MESSAGE = ("During handling of the above exception, "
                    "another exception occurred:\n")
_MAX_GROUP_WIDTH = 15               # PyErr_MAX_GROUP_WIDTH
_MAX_GROUP_DEPTH = 10               # PyErr_MAX_GROUP_DEPTH
_SOURCE_CACHE_BYTES = 16 << 20      # the decoded files kept (see _decoded_lines), by their size

# Python/suggestions.c
_MAX_CANDIDATE_ITEMS = 750
_MAX_STRING_SIZE = 40
_MOVE_COST = 2
_CASE_COST = 1

# The C code reads the struct fields, not attributes a subclass could shadow.
_exc_traceback = BaseException.__traceback__.__get__
_exc_cause = BaseException.__cause__.__get__
_exc_context = BaseException.__context__.__get__
_exc_suppress_context = BaseException.__suppress_context__.__get__
_group_excs = BaseExceptionGroup.exceptions.__get__
_type_qualname = type.__dict__["__qualname__"].__get__


def _is_instance(obj, cls):
    """Whether *obj*'s type is *cls* or a subclass, as the C code's type checks
    (PyExceptionInstance_Check, PyUnicode_Check...) tell: by ``type(obj)``,
    never the ``__class__`` an object may claim (or fail to give)."""
    return issubclass(type(obj), cls)


# Not computed yet (see _Context.top_str).
_UNSET = object()

# Inside PyKernel this module finds built-in names (and the ``__import__`` its
# ``import`` statements call) in a copy of ``builtins`` taken as the engine
# started, which the code's rebinding them leaves alone (python3's printer is
# C code); ``builtins`` itself is read where python3's printer sees the code's.
# builtins.__import__ as the interpreter started with it (see _imports_io).
_BUILTIN_IMPORT = builtins.__import__


class _PrintFailed(Exception):
    """The C printer would have aborted here (returned -1)."""


# ---------------------------------------------------------------------------
# Public API


def exception_name(exc):
    """The type's name as printed: ``module.qualname``, without the module
    for ``builtins`` and ``__main__`` (print_exception_message)."""
    tp = type(exc)
    try:
        module = getattr(tp, "__module__")
    except BaseException:
        module = None
    if not _is_instance(module, str):
        prefix = "<unknown>."
    elif module in ("builtins", "__main__"):
        prefix = ""
    else:
        prefix = module + "."
    try:
        qualname = _type_qualname(tp)
    except BaseException:
        qualname = None
    if not _is_instance(qualname, str):
        qualname = "<unknown>"
    return prefix + qualname


def exception_value(exc):
    """``str(exc)``, or the printer's fallback text if ``str()`` raises."""
    try:
        return str(exc)
    except BaseException:
        return "<exception str() failed>"


def format_exception(exc, *, skip_frames=0):
    """Return what ``sys.__excepthook__`` (PyErr_Display) would print for
    *exc*, with source lines of ``<...>`` pseudo-files taken from linecache.

    *skip_frames* drops that many leading entries of *exc*'s own traceback
    (not of chained or grouped exceptions): a host that runs the cell from a
    Python frame passes 1 so that the cell's ``<module>`` frame comes first,
    as when the code is run from C with PyEval_EvalCode.
    """
    return "".join(_format(_Context(exc, skip_frames), exc))


def format_exception_and_value(exc):
    """``(format_exception(exc), exception_value(exc))`` with ``str(exc)``
    called once, as python3 calls it once to print the exception: the value
    is the message the printer wrote (``str()`` is called again only when the
    printer did not call it: a SyntaxError's message is its ``msg``)."""
    ctx = _Context(exc, 0)
    text = "".join(_format(ctx, exc))
    value = ctx.top_str
    if value is _UNSET:
        value = exception_value(exc)
    return text, value


def _format(ctx, exc):
    """The printer's output for *exc*, as a list of strings (see format_exception)."""
    written = len(ctx.out)
    try:
        _print_exception_recursive(ctx, exc)
    except BaseException:
        # _PrintFailed, RecursionError: _PyErr_Display would give up here
        # (see the module docstring).  Never fail the caller, nor leave it
        # a half-written traceback.
        del ctx.out[written:]
        try:
            import traceback
            ctx.write("".join(traceback.format_exception_only(type(exc),
                                                              exc)))
        except BaseException:
            ctx.write(exception_name(exc) + "\n")
    return ctx.out


def format_thread_exception(args):
    """Return what ``threading.__excepthook__`` (``_thread._excepthook``,
    thread_excepthook_file in Modules/_threadmodule.c) prints for *args*
    (``threading.ExceptHookArgs``), with source lines of ``<...>``
    pseudo-files taken from linecache."""
    name = None
    if args.thread is not None:
        name = getattr(args.thread, "name", None)
    try:
        shown = str(name) if name is not None else str(_thread_ident())
    except BaseException:
        shown = ""
    text = "Exception in thread %s:\n" % shown
    value = args.exc_value
    if value is None or not _is_instance(value, BaseException):
        import traceback
        return text + "".join(traceback.format_exception_only(args.exc_type, value))
    if _exc_traceback(value) is None and args.exc_traceback is not None:
        BaseException.__traceback__.__set__(value, args.exc_traceback)  # as _PyErr_Display does
    return text + format_exception(value)


def _thread_ident():
    import _thread
    return _thread.get_ident()


def format_unraisable(unraisable, *, source_lines=True):
    """Return what ``sys.__unraisablehook__`` (write_unraisable_exc_file in
    Python/errors.c) prints for *unraisable* (``sys.UnraisableHookArgs``):
    the message and object, the traceback's frames (PyTraceBack_Print, with
    source lines of ``<...>`` pseudo-files taken from linecache), then the
    exception's type and value -- no chain, no notes.

    Without *source_lines* the frames have none, as when the interpreter
    frees a program's objects as it ends (its modules are gone by then, and
    with them the ``io`` the C printer opens files with)."""
    ctx = _Context(None, 0)
    ctx.source_lines = source_lines
    obj, err_msg = unraisable.object, unraisable.err_msg
    if obj is not None:
        if err_msg is not None:
            ctx.write(_str_or(err_msg, "") + ": ")
        else:
            ctx.write("Exception ignored in: ")
        try:
            ctx.write(repr(obj))
        except BaseException:
            ctx.write("<object repr() failed>")
        ctx.write("\n")
    elif err_msg is not None:
        ctx.write(_str_or(err_msg, "") + ":\n")
    if unraisable.exc_traceback is not None:
        try:
            _traceback_print_indented(ctx, unraisable.exc_traceback, 0, "", "",
                                      _TB_HEADER)
        except BaseException:
            pass
    exc_type = unraisable.exc_type
    if exc_type is None:
        return "".join(ctx.out)
    module = getattr(exc_type, "__module__", None)
    if not _is_instance(module, str):
        ctx.write("<unknown>")
    elif module not in ("builtins", "__main__"):
        ctx.write(module + ".")
    qualname = getattr(exc_type, "__qualname__", None)
    ctx.write(qualname if _is_instance(qualname, str) else "<unknown>")
    if unraisable.exc_value is not None:
        ctx.write(": " + _str_or(unraisable.exc_value, "<exception str() failed>"))
    ctx.write("\n")
    return "".join(ctx.out)


def _str_or(obj, fallback):
    try:
        return str(obj)
    except BaseException:
        return fallback


class _Context:
    """struct exception_print_context (pythonrun.c) plus the output buffer."""

    __slots__ = ("out", "seen", "depth", "need_close", "top", "skip", "source_lines", "room",
                 "top_str")

    def __init__(self, top, skip):
        self.top_str = _UNSET   # str(top) as the message printed it (see format_exception_and_value)
        self.source_lines = True  # False: frames without their lines (see format_unraisable)
        self.out = []
        self.seen = set()
        self.depth = 0          # exception_group_depth
        self.need_close = False
        self.top = top
        self.skip = skip
        self.room = None        # see _room, found when first needed

    def write(self, text):
        self.out.append(text)

    def indent(self):           # EXC_INDENT
        return 2 * self.depth

    def margin(self):           # EXC_MARGIN
        return "| " if self.depth else ""

    def write_indented_margin(self):
        self.out.append(" " * self.indent() + self.margin())


# ---------------------------------------------------------------------------
# Python/pythonrun.c


def _print_exception_recursive(ctx, value, level=1):
    # print_exception_recursive, with its recursion through
    # print_exception_cause_and_context and print_chained unrolled: the chain
    # is followed first (marking each exception seen, as the C code does on
    # its way down), then printed from its oldest exception, each followed by
    # the message that links it to the next.  *level* is the C function's
    # nesting (1 for the exception given; a group's exceptions one deeper):
    # the C code gives up where _Py_EnterRecursiveCall fails (see _room).
    link = _chain_link(ctx, value)
    if link is None and level == 1:
        # A lone exception (the common case): printed unless the code's own
        # frames nearly reach the recursion limit (a hook called from ~995
        # frames deep), which is not followed.
        if not _is_instance(value, BaseExceptionGroup):
            _print_exception(ctx, value)
        else:
            _print_exception_group(ctx, value, level)
        return
    chain = [value]
    messages = []
    while link is not None:
        chain.append(link[0])
        messages.append(link[1])
        link = _chain_link(ctx, link[0])
    room = ctx.room
    if room is None:
        room = ctx.room = _room()
    # Each exception is printed with a write on sys.stderr: its text layer
    # calls its buffer's write, which calls its file's (the buffer is the
    # file with -u).  Its source lines are read through io.open, a call more.
    if level + len(chain) - 1 > room - _WRITE_CALLS:
        raise _PrintFailed
    need_close = ctx.need_close
    source_lines = ctx.source_lines
    for i in range(len(chain) - 1, -1, -1):
        ctx.source_lines = source_lines and level + i <= room - 4
        if not _is_instance(chain[i], BaseExceptionGroup):
            _print_exception(ctx, chain[i])
        else:
            _print_exception_group(ctx, chain[i], level + i)
        ctx.source_lines = source_lines
        if i:
            # print_chained, back from its print_exception_recursive
            ctx.need_close = need_close
            ctx.write_indented_margin()
            ctx.write("\n")
            ctx.write_indented_margin()
            ctx.write(messages[i - 1])
            ctx.write_indented_margin()
            ctx.write("\n")


def _chain_link(ctx, value):
    # print_exception_cause_and_context, up to its call of print_chained:
    # marks *value* seen and returns (the exception to print before it, the
    # message between them), or None.
    ctx.seen.add(id(value))
    if not _is_instance(value, BaseException):
        return None
    cause = _exc_cause(value)
    if cause is not None:
        if id(cause) in ctx.seen:       # print_exception_seen_lookup
            return None
        return cause, _CAUSE_MESSAGE
    if _exc_suppress_context(value):
        return None
    context = _exc_context(value)
    if context is None or id(context) in ctx.seen:
        return None
    return context, _CONTEXT_MESSAGE


def _room():
    """How many calls deep python3's printer may go before
    _Py_EnterRecursiveCall fails (3.11 counts Python frames and C calls
    alike): the recursion limit less the Python frames under the hook's call
    as python3 would have them -- the code's frames, not the engine's (none
    for an exception printed as the program ends, the thread's bootstrap for
    a thread's)."""
    frames = 0
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != _OWN_FILENAME and not filename.startswith(_ENGINE_PREFIX):
            frames += 1
        frame = frame.f_back
    return sys.getrecursionlimit() - frames


def _print_exception_group(ctx, value, level):
    # print_exception_group
    if ctx.depth > _MAX_GROUP_DEPTH:
        ctx.write_indented_margin()
        ctx.write("... (max_group_depth is %d)\n" % _MAX_GROUP_DEPTH)
        return
    if ctx.depth == 0:
        ctx.depth += 1
    try:
        _print_exception(ctx, value)    # the C code ignores its result
    except _PrintFailed:
        pass
    excs = _group_excs(value)
    num_excs = len(excs)
    n = num_excs if num_excs <= _MAX_GROUP_WIDTH else _MAX_GROUP_WIDTH + 1
    ctx.need_close = False
    for i in range(n):
        last_exc = i == n - 1
        if last_exc:
            # The closing frame may be added in a recursive call
            ctx.need_close = True
        ctx.write(" " * ctx.indent())
        truncated = i >= _MAX_GROUP_WIDTH
        corner = "+-" if i == 0 else "  "
        if not truncated:
            ctx.write("%s+---------------- %d ----------------\n"
                      % (corner, i + 1))
        else:
            ctx.write("%s+---------------- ... ----------------\n" % corner)
        ctx.depth += 1
        if not truncated:
            _print_exception_recursive(ctx, excs[i], level + 1)
        else:
            remaining = num_excs - _MAX_GROUP_WIDTH
            ctx.write_indented_margin()
            ctx.write("and %d more exception%s\n"
                      % (remaining, "s" if remaining > 1 else ""))
        if last_exc and ctx.need_close:
            ctx.write(" " * ctx.indent())
            ctx.write("+------------------------------------\n")
            ctx.need_close = False
        ctx.depth -= 1
    if ctx.depth == 1:
        ctx.depth -= 1


def _print_exception(ctx, value):
    # print_exception
    if not _is_instance(value, BaseException):
        # print_exception_invalid_type
        ctx.write("TypeError: print_exception(): Exception expected for "
                  "value, %s found\n" % type(value).__name__)
        return
    _print_exception_traceback(ctx, value)
    tp = type(value)    # grab the type now because value can change below
    value = _print_exception_file_and_line(ctx, value)
    _print_exception_message(ctx, tp, value)
    _print_exception_suggestions(ctx, value)
    ctx.write("\n")
    _print_exception_notes(ctx, value)


def _print_exception_traceback(ctx, value):
    # print_exception_traceback
    tb = _exc_traceback(value)
    if value is ctx.top:
        for _ in range(ctx.skip):
            if tb is None:
                break
            tb = tb.tb_next
    if tb is None:
        return
    header = _TB_HEADER
    header_margin = ctx.margin()
    if _is_instance(value, BaseExceptionGroup):
        header = _GROUP_TB_HEADER
        if ctx.depth == 1:
            header_margin = "+ "
    _traceback_print_indented(ctx, tb, ctx.indent(), ctx.margin(),
                              header_margin, header)


def _print_exception_file_and_line(ctx, value):
    # print_exception_file_and_line: SyntaxError and anything else with a
    # print_file_and_line attribute.  Returns the object whose str() is the
    # message: SyntaxError.msg when the attributes parse, else *value*.
    try:
        getattr(value, "print_file_and_line")
    except BaseException:
        return value
    parsed = _parse_syntax_error(value)
    if parsed is None:
        return value
    message, filename, lineno, offset, end_lineno, end_offset, text = parsed
    try:
        line = '  File "%s", line %d\n' % (str(filename), lineno)
    except BaseException:
        raise _PrintFailed
    ctx.write_indented_margin()
    ctx.write(line)
    if _is_instance(value, SyntaxError):
        try:
            text, offset, end_offset = _as_if_parsed_from_file(
                value, filename, lineno, text, offset, end_offset)
        except BaseException:
            pass
    if text is not None:
        try:
            line_size = len(text.encode("utf-8"))
            error_line = True
        except BaseException:
            error_line = False
        # If the location of the error spawn multiple lines, we want
        # to just print the first one and highlight everything until
        # the end of that one since we don't support multi-line error
        # messages.
        if end_lineno > lineno:
            end_offset = line_size if error_line else -1
        # Limit the amount of '^' that we can display to
        # the size of the text in the source line.
        if error_line and end_offset > line_size + 1:
            end_offset = line_size + 1
        _print_error_text(ctx, offset, end_offset, text)
    return message


def _as_ssize_t(v):
    # PyLong_AsSsize_t: ints only (no __index__), overflow is an error
    if not _is_instance(v, int) or not -_LONG_MAX - 1 <= v <= _LONG_MAX:
        raise TypeError
    return int(v)


def _parse_syntax_error(err):
    # parse_syntax_error; None where the C function returns 0
    try:
        message = err.msg
        filename = err.filename
        if filename is None:
            filename = "<string>"
        lineno = _as_ssize_t(err.lineno)
        offset = err.offset
        offset = -1 if offset is None else _as_ssize_t(offset)
        if type(err) is SyntaxError:
            try:
                v = err.end_lineno
            except AttributeError:
                v = None
            end_lineno = lineno if v is None else _as_ssize_t(v)
            try:
                v = err.end_offset
            except AttributeError:
                v = None
            end_offset = -1 if v is None else _as_ssize_t(v)
        else:
            # SyntaxError subclasses
            end_lineno = lineno
            end_offset = -1
        text = err.text
    except BaseException:
        return None
    return message, filename, lineno, offset, end_lineno, end_offset, text


def _as_if_parsed_from_file(exc, filename, lineno, text, offset, end_offset):
    """SyntaxError location as ``python3.11 file.py`` reports it for a cell.

    A cell is compiled from a str, a file from a FILE*, and the two parsers
    fill in SyntaxError differently (Parser/pegen_errors.c
    _PyPegen_raise_error_known_location, Python/errors.c err_programtext):

    * a file's error line is re-read from the file: compiler and symtable
      errors ("'return' outside function") have text=None for a cell, and
      lines over 998 bytes come back as their last fgets() chunk;
    * with no coding cookie the file tokenizer has no encoding, so parser
      errors keep byte offsets where a str gets character offsets;
    * a token at end of input has no position; the file tokenizer then
      reports offset 0 where the string tokenizer reports the line length.

    The offsets are taken from recompiling the cell as bytes, whose tokenizer
    has no encoding either; *text* stays as it is when the two compiles
    disagree or the cell source is not registered.
    """
    source = _registered_source(filename)
    if source is None or exc.filename != filename:
        return text, offset, end_offset
    if text is None:
        # compiler_error / symtable: PyErr_ProgramTextObject failed for <...>
        # (the compiler's errors, and the code's own compile() of a source
        # under a cell's name, whose line python3 would read from the file).
        # Those always have an end_lineno; a SyntaxError the code raises with
        # a 4-tuple has none, and python3 prints it without a line.
        if exc.end_lineno is None:
            return text, offset, end_offset
        return _program_text(source, lineno), offset, end_offset
    try:
        compile(source.encode("utf-8"), filename, "exec", dont_inherit=True)
        return text, offset, end_offset
    except SyntaxError as again:
        if (type(again) is not type(exc) or again.msg != exc.msg
                or again.lineno != exc.lineno):
            return text, offset, end_offset
        raw_offset, raw_end_offset = again.offset, again.end_offset
    except BaseException:
        return text, offset, end_offset
    lines = _universal_lines(source.encode("utf-8"))
    if _is_instance(raw_offset, int):
        offset = raw_offset
        if raw_end_offset != -1:
            pass
        elif exc.msg == "unexpected EOF while parsing":
            # E_EOF after a "\\" continuation: the file tokenizer had reset
            # its buffer only if the "\\" began the line
            if (1 <= lineno <= len(lines)
                    and lines[lineno - 1].strip(b" \t\f\n") == b"\\"):
                offset = 0
        elif _located_at_end_of_input(source, exc, lineno, raw_offset):
            # _PyPegen_raise_error: token without position at end of input,
            # "p->tok->cur == p->tok->buf" holds for a file
            offset = 0
    if type(exc) is SyntaxError and _is_instance(raw_end_offset, int):
        end_offset = raw_end_offset
    # Where the parser took its text from line *lineno* of the cell, a file
    # parser re-reads that line from the file.  Not so for errors raised by
    # the tokenizer itself (_syntaxerror_range: the line without its "\n",
    # alike for a file) nor for f-string expressions (their own parser).
    # Parser errors pointing at an earlier line than the tokenizer's also
    # lack the "\n": those spanning lines and unclosed brackets
    # (raise_unclosed_parentheses_error) are told apart here.
    # After "\\" continuations the parser's text holds the continued lines
    # too; a file gives only the last.
    # (The text's last line is what follows its last inner "\n": empty when
    # the continued lines end with an empty one.)
    end_lineno = exc.end_lineno
    last_line = (text[:-1] if text.endswith("\n") else text).rsplit("\n", 1)[-1]
    if (1 <= lineno <= len(lines)
            and last_line.encode("utf-8", "replace") == lines[lineno - 1][:-1]
            and (text.endswith("\n")
                 or (_is_instance(end_lineno, int) and end_lineno > lineno)
                 or str(exc.msg).endswith("' was never closed"))):
        file_text = _program_text(source, lineno)
        if file_text is not None:
            text = file_text
        elif not text.endswith("\n"):
            # Unreadable (a chunk cut inside a character): the fallback is
            # the tokenizer's current line, or "" once it has moved past.
            text = ""
    return text, offset, end_offset


def _located_at_end_of_input(source, exc, lineno, raw_offset):
    # The string tokenizer then reports the length of the last line; tell
    # that from an error that merely is on the last line by appending a
    # blank line, which moves the end of input.
    data = b"".join(_universal_lines(source.encode("utf-8")))
    if not data.endswith(b"\n") or data.count(b"\n") != lineno:
        return False
    if raw_offset != len(data) - (data.rfind(b"\n", 0, -1) + 1):
        return False
    try:
        compile(data + b"\n", exc.filename, "exec", dont_inherit=True)
    except SyntaxError as probe:
        return (probe.lineno, probe.offset) != (lineno, raw_offset)
    except BaseException:
        return False
    return True


def _universal_lines(data):
    """Lines (with b"\\n") as Py_UniversalNewlineFgets reads them; the last
    line gets the "\\n" the string tokenizer adds (translate_newlines)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line + b"\n" for line in lines]


def _program_text(source, lineno):
    # err_programtext: fgets() into a 1000-byte buffer until the end of the
    # line, so only the last chunk of a long line survives; decoded strictly
    # (None for a chunk cut inside a character, as for a missing line).
    try:
        data = source.encode("utf-8")
    except UnicodeEncodeError:
        return None
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    lines = [line + b"\n" for line in lines[:-1]] + (
        [lines[-1]] if lines[-1] else [])
    if not 1 <= lineno <= len(lines):
        return None
    line = lines[lineno - 1]
    start = 0
    while len(line) - start >= 999 and line[start + 998] != 0x0A:
        start += 999
        if start == len(line):
            return None         # fgets() hit the end of the file
    try:
        return line[start:].split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _print_error_text(ctx, offset, end_offset, text_obj):
    # print_error_text.  Works on the UTF-8 bytes like the C code, while
    # offset/end_offset are character offsets (3.10+ SyntaxError semantics).
    caret_repetitions = (end_offset - offset
                         if end_offset > 0 and end_offset > offset else 1)
    try:
        text = text_obj.encode("utf-8")
    except BaseException:
        raise _PrintFailed
    text = text.split(b"\0", 1)[0]          # a C string
    offset -= 1                             # 1-based to 0-based
    # Strip leading whitespace from text, adjusting offset as we go
    i = 0
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
        offset -= 1
    text = text[i:]
    # Calculate text length excluding trailing newline
    length = len(text)
    if length > 0 and text[length - 1] == 0x0A:
        length -= 1
    # Clip offset to at most len
    if offset > length:
        offset = length
    # Skip past newlines embedded in text
    while True:
        nl = text.find(b"\n")
        if nl < 0 or nl >= offset:
            break
        nl += 1
        text = text[nl:]
        length -= nl
        offset -= nl
    ctx.write("    ")
    ctx.write(text.decode("utf-8", "replace"))
    # Make sure there's a newline at the end
    if text[length:length + 1] != b"\n":
        ctx.write("\n")
    # Don't print caret if it points to the left of the text
    if offset < 0:
        return
    ctx.write("    " + " " * offset + "^" * caret_repetitions + "\n")


def _print_exception_message(ctx, tp, value):
    # print_exception_message: module.qualname[: str(value)]
    ctx.write_indented_margin()
    try:
        module = getattr(tp, "__module__")
    except BaseException:
        module = None
    if not _is_instance(module, str):
        ctx.write("<unknown>.")
    elif module not in ("builtins", "__main__"):
        ctx.write(module + ".")
    try:
        qualname = _type_qualname(tp)
    except BaseException:
        qualname = None
    ctx.write(qualname if _is_instance(qualname, str) else "<unknown>")
    if value is None:
        return
    try:
        s = str(value)
    except BaseException:
        if value is ctx.top:
            ctx.top_str = "<exception str() failed>"
        ctx.write(": <exception str() failed>")
        return
    if value is ctx.top:
        ctx.top_str = s
    if s:
        ctx.write(": ")
    ctx.write(s)


def _print_exception_suggestions(ctx, value):
    # print_exception_suggestions
    try:
        suggestion = _offer_suggestions(value)
    except BaseException:
        suggestion = None
    if suggestion is not None:
        ctx.write(". Did you mean: '%s'?" % suggestion)


def _is_sequence(obj):
    # PySequence_Check
    return not _is_instance(obj, dict) and hasattr(type(obj), "__getitem__")


def _print_exception_notes(ctx, value):
    # print_exception_notes (3.11.2: the non-sequence branch writes no
    # newline and "<note str() failed>" gets no margin, like the C code)
    if not _is_instance(value, BaseException):
        return
    try:
        getattr(value, "__notes__")     # PyObject_HasAttr: any failure is "no notes"
    except BaseException:
        return
    try:
        notes = getattr(value, "__notes__")
    except BaseException:
        raise _PrintFailed
    if not _is_sequence(notes):
        ctx.write_indented_margin()
        try:
            ctx.write(repr(notes))
        except BaseException:
            ctx.write("<__notes__ repr() failed>")
        return
    try:
        num_notes = len(notes)
    except BaseException:
        raise _PrintFailed
    for ni in range(num_notes):
        try:
            note_str = str(notes[ni])
        except BaseException:
            note_str = None
        if note_str is None:
            ctx.write("<note str() failed>")
        else:
            for line in note_str.splitlines(True):
                ctx.write_indented_margin()
                ctx.write(line)
        ctx.write("\n")


# ---------------------------------------------------------------------------
# Python/traceback.c


def _traceback_print_indented(ctx, tb, indent, margin, header_margin, header):
    # _PyTraceBack_Print_Indented
    limit = _TB_LIMIT_DEFAULT
    limitv = sys.__dict__.get("tracebacklimit")
    if _is_instance(limitv, int):
        if limitv <= 0:
            return
        limit = min(limitv, _LONG_MAX)
    ctx.write(" " * indent + header_margin)
    ctx.write(header)
    _tb_printinternal(ctx, tb, limit, indent, margin)


def _tb_print_line_repeated(ctx, cnt):
    # tb_print_line_repeated (no margin in 3.11)
    cnt -= _TB_RECURSIVE_CUTOFF
    ctx.write("  [Previous line repeated %d more time%s]\n"
              % (cnt, "s" if cnt > 1 else ""))


def _tb_printinternal(ctx, tb, limit, indent, margin):
    # tb_printinternal
    depth = 0
    tb1 = tb
    while tb1 is not None:
        depth += 1
        tb1 = tb1.tb_next
    while tb is not None and depth > limit:
        depth -= 1
        tb = tb.tb_next
    last_file = last_name = None
    last_line = -1
    cnt = 0
    while tb is not None:
        code = tb.tb_frame.f_code
        # identity comparisons, like the pointer comparisons in C
        if (last_file is None or code.co_filename is not last_file
                or last_line == -1 or tb.tb_lineno != last_line
                or last_name is None or code.co_name is not last_name):
            if cnt > _TB_RECURSIVE_CUTOFF:
                _tb_print_line_repeated(ctx, cnt)
            last_file = code.co_filename
            last_line = tb.tb_lineno
            last_name = code.co_name
            cnt = 0
        cnt += 1
        if cnt <= _TB_RECURSIVE_CUTOFF:
            _tb_displayline(ctx, tb, code, indent, margin)
        tb = tb.tb_next
    if cnt > _TB_RECURSIVE_CUTOFF:
        _tb_print_line_repeated(ctx, cnt)


def _tb_displayline(ctx, tb, code, indent, margin):
    # tb_displayline
    filename = code.co_filename
    ctx.write(" " * indent + margin)
    ctx.write('  File "%s", line %d, in %s\n'
              % (filename, tb.tb_lineno, code.co_name))

    source_line = _read_source_line(filename, tb.tb_lineno) if ctx.source_lines else None
    if source_line is None:
        return
    # display_source_line_with_margin: remove the indentation of the line
    i = 0
    while i < len(source_line) and source_line[i] in " \t\f":
        i += 1
    truncation = i - _SOURCE_LINE_INDENT
    ctx.write(" " * indent + margin + " " * _SOURCE_LINE_INDENT)
    ctx.write(source_line[i:])
    ctx.write("\n")

    start_line, end_line, start_col, end_col = _code_location(code,
                                                              tb.tb_lasti)
    if (start_line is None or end_line is None or start_col is None
            or end_col is None or start_line < 0 or end_line < 0
            or start_col < 0 or end_col < 0):
        return
    # Convert the utf-8 byte offset to the actual character offset so we
    # print the right number of carets.
    start_offset = _byte_offset_to_character_offset(source_line, start_col)
    end_offset = _byte_offset_to_character_offset(source_line, end_col)
    if start_offset is None or end_offset is None:
        return

    left_end_offset = right_start_offset = -1
    primary = secondary = "^"
    if start_line == end_line:
        anchors = _extract_anchors_from_line(ctx, filename, source_line,
                                             start_offset, end_offset)
        if anchors is not None:
            left_end_offset, right_start_offset, primary, secondary = anchors
    else:
        # If this is a multi-line expression, then we will highlight until
        # the last non-whitespace character.  (3.11 indexes the UTF-8 bytes
        # with a character count here; reproduced as is.)
        try:
            source_bytes = source_line.encode("utf-8")
        except UnicodeEncodeError:
            return
        j = len(source_line) - 1
        while j >= 0 and source_bytes[j] in _WHITESPACE:
            j -= 1
        end_offset = j + 1

    # Elide indicators if primary char spans the frame line
    stripped_line_len = (len(source_line) - truncation
                         - _SOURCE_LINE_INDENT)
    has_secondary_ranges = left_end_offset != -1 or right_start_offset != -1
    if (end_offset - start_offset == stripped_line_len
            and not has_secondary_ranges):
        return
    ctx.write(" " * indent + margin)
    ctx.write(_carets(truncation, start_offset, end_offset, has_secondary_ranges,
                      left_end_offset, right_start_offset, primary, secondary) + "\n")


def _carets(truncation, start_offset, end_offset, has_secondary_ranges,
            left_end_offset, right_start_offset, primary, secondary):
    """print_error_location_carets: for each offset in (truncation, end_offset], a space up to
    start_offset, then the secondary character within (left_end_offset, right_start_offset] when
    there are secondary ranges, else the primary one (built by runs, not a character at a time)."""
    first = max(truncation, start_offset)      # the last offset that is a space
    spaces = max(0, min(start_offset, end_offset) - truncation)
    if end_offset <= first:
        return " " * spaces
    if not has_secondary_ranges:
        return " " * spaces + primary * (end_offset - first)
    low = min(max(left_end_offset, first), end_offset)    # secondary from low + 1 ...
    high = min(max(right_start_offset, low), end_offset)  # ... through high
    return (" " * spaces + primary * (low - first) + secondary * (high - low)
            + primary * (end_offset - high))


_positions = {}          # id(code) -> (code, its co_positions() as a tuple), oldest first
_POSITIONS_KEPT = 256


def _code_location(code, lasti):
    # PyCode_Addr2Location: (start_line, end_line, start_col, end_col); the positions of a code
    # object of a real file (a library's function, long-lived) are listed once: a frame deep in
    # a large function walked them from the start. A cell's code is short and seldom seen twice.
    if lasti < 0:
        return code.co_firstlineno, code.co_firstlineno, 0, 0
    if code.co_filename[:1] == "<":
        return next(itertools.islice(code.co_positions(), lasti // 2, None), (None, None, None, None))
    entry = _positions.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_positions) >= _POSITIONS_KEPT:
            del _positions[next(iter(_positions))]
        entry = _positions[id(code)] = (code, tuple(code.co_positions()))
    index = lasti // 2
    positions = entry[1]
    return positions[index] if 0 <= index < len(positions) else (None, None, None, None)


def _byte_offset_to_character_offset(line, col_offset):
    # _PyPegen_byte_offset_to_character_offset (Parser/pegen.c)
    try:
        data = line.encode("utf-8")
    except UnicodeEncodeError:
        return None
    length = data.find(b"\0")               # strlen()
    if length < 0:
        length = len(data)
    if col_offset > length + 1:
        col_offset = length + 1
    return len((data + b"\0")[:col_offset].decode("utf-8", "replace"))


def _extract_anchors_from_line(ctx, filename, line, start_offset,
                               end_offset):
    # extract_anchors_from_line / extract_anchors_from_stmt /
    # extract_anchors_from_expr.  The AST offsets are byte offsets into the
    # UTF-8 segment; IS_WHITESPACE is tested on those bytes.
    segment = line[start_offset:end_offset]
    try:
        segment_bytes = segment.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if _CANNOT_ANCHOR_OR_WARN(segment):
        # Without an operator, a bracket, a digit or a quote the segment parses to no BinOp or
        # Subscript, and its parse warns of nothing: skip parsing it (most call frames).
        return None
    tree = _parse_segment(ctx, segment, filename)
    if tree is None:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    expr = tree.body[0].value
    if isinstance(expr, ast.BinOp):
        left_anchor = right_anchor = -1
        for i in range(expr.left.end_col_offset, expr.right.col_offset):
            if segment_bytes[i] in _WHITESPACE:
                continue
            left_anchor = i
            right_anchor = i + 1
            # Check whether if this a two-character operator (e.g //)
            if (i + 1 < expr.right.col_offset
                    and segment_bytes[i + 1] not in _WHITESPACE):
                right_anchor += 1
            break
        if left_anchor < 0:
            return None
    elif isinstance(expr, ast.Subscript):
        left_anchor = expr.value.end_col_offset
        right_anchor = expr.slice.end_col_offset + 1
    else:
        return None
    left = _byte_offset_to_character_offset(segment, left_anchor)
    right = _byte_offset_to_character_offset(segment, right_anchor)
    if left is None or right is None:
        return None
    return left + start_offset, right + start_offset, "~", "^"


_CANNOT_ANCHOR_OR_WARN = re.compile(r"[^-+*/%@&|^<>\[0-9'\"\\\\]*\Z").match


def _parse_segment(ctx, segment, filename):
    # _PyParser_ASTFromString(segment, filename, Py_file_input): a warning of
    # the tokenizer ("invalid decimal literal" for "1if") goes through the
    # warnings filters and is printed in the middle of the traceback, as
    # "<filename>:1: SyntaxWarning: ..." and line 1 of that file.
    # The engine's own reference to the module: code may have replaced or
    # broken the shared one (sys.modules['warnings'] = None, its filters or
    # catch_warnings set to None). When its state cannot be saved, the parse
    # goes through it as python3's does, and a warning it fails to issue
    # fails the parse (no carets), never the traceback.
    python_warnings = "warnings" in sys.modules
    warnings, catch_warnings, formatwarnmsg = _warnings or _take_warnings()
    catching = catch_warnings(record=True, module=warnings)
    try:
        caught = catching.__enter__()
    except BaseException:
        _leave(catching)  # what it changed before it failed
        catching, caught = None, []
    try:
        tree = compile(segment, filename, "exec", ast.PyCF_ONLY_AST)
    except BaseException:
        tree = None
    finally:
        if catching is not None:
            _leave(catching)
    for message in caught:
        try:
            if python_warnings:
                ctx.write(formatwarnmsg(message))
                continue
            # Python/_warnings.c show_warning, used while the warnings
            # module is not imported (as in a fresh python3.11 file.py)
            ctx.write("%s:%d: %s: %s\n" % (message.filename, message.lineno,
                                           message.category.__name__,
                                           message.message))
            line = _read_source_line(message.filename, message.lineno)
            if line is not None:
                ctx.write("  " + line.lstrip(" \t\f") + "\n")
        except BaseException:
            pass
    return tree


def _take_warnings():
    """The engine's own ``warnings``, its ``catch_warnings`` and ``_formatwarnmsg``: code that
    replaces or breaks the shared module (its entry in sys.modules, its catch_warnings) breaks no
    record. Taken as this module is loaded (the runtime loads ``warnings`` first), or at the first
    use where nothing had loaded it (a plain python3, whose printer imports it then)."""
    global _warnings
    import warnings
    _warnings = warnings, warnings.catch_warnings, warnings._formatwarnmsg
    return _warnings


_warnings = _take_warnings() if "warnings" in sys.modules else None


def _leave(catching):
    """Puts back the warnings state *catching* (a catch_warnings) saved."""
    try:
        catching.__exit__(None, None, None)
    except BaseException:
        pass


def _read_source_line(filename, lineno):
    """The text of line *lineno* without its line break, or None.

    display_source_line_with_margin: real files are opened and decoded like
    the C code does.  For ``<...>`` names (which the C code never opens) and
    for files that cannot be opened, a full ``linecache.cache`` entry
    registered by the host (mtime None) is used instead.  None, as python3
    shows no line, when importing ``io`` fails (see _imports_io).
    """
    if not _is_instance(filename, str):
        return None
    if not (filename[:1] == "<" and filename[-1:] == ">"):
        if not _imports_io():
            return None
        found, line = _read_real_file_line(filename, lineno)
        if found:
            return line
        return _registered_source_line(filename, lineno)
    text = _registered_source(filename)
    if text is None or not _imports_io():
        return None
    return _source_text_line(text, lineno)


def _imports_io():
    """Whether ``PyImport_ImportModuleNoBlock("io")`` succeeds, which
    display_source_line_with_margin calls before it opens a file: it calls
    ``builtins.__import__("io", globals, globals, [], 0)`` (PyImport_Import,
    the printer running without a frame: globals ``{"__builtins__":
    builtins}``), so a program that replaced or removed ``__import__`` gets
    no source lines (and its ``__import__`` is called for each frame)."""
    try:
        function = builtins.__dict__["__import__"]
        if function is _BUILTIN_IMPORT and "io" in sys.modules:
            return True  # what the call would find, without making the dict
        globals_ = {"__builtins__": builtins}
        function("io", globals_, globals_, [], 0)
        sys.modules["io"]  # import_get_module
    except BaseException:
        return False
    return True


def _registered_source(filename):
    """The source the host registered for a pseudo-file, or None (see
    ``registered_source``)."""
    try:
        text = registered_source(filename)
    except BaseException:
        return None
    return text if _is_instance(text, str) else None


def linecache_source(filename):
    """The source of a pseudo-file registered as a full linecache entry (mtime
    None, as linecache's own convention for such sources), or None."""
    try:
        entry = linecache.cache.get(filename)
    except BaseException:
        return None
    if not _is_instance(entry, tuple) or len(entry) != 4 or entry[1] is not None:
        return None
    try:
        text = "".join(entry[2])
    except BaseException:
        return None
    return text if _is_instance(text, str) else None


# The source of a pseudo-file (``<...>``) the host registered, or None: the
# only source lines shown besides real files'.  CPython's printer opens no
# ``<...>`` name and never reads linecache, so an entry that user code put in
# linecache.cache shows no line.  The engine looks up its cells here
# (pykernel_runtime.install); by default, hosts register theirs in linecache.
registered_source = linecache_source


def _registered_source_line(filename, lineno):
    text = _registered_source(filename)
    if text is None:
        return None
    return _source_text_line(text, lineno)


def _source_text_line(text, lineno):
    # Number the lines the way the compiler and a universal-newline reader
    # do (\n, \r\n, \r), whatever str.splitlines() the host used.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1]
    return None


def _read_real_file_line(filename, lineno):
    """(opened, line) following display_source_line_with_margin.

    The file is opened for every frame, as the C code does; its decoded lines are kept while its
    device, inode, size and modification time stay the same (_decoded_lines), so a deep
    traceback through large library files (pandas: ~10k lines each) is not a re-read and a
    ``readline`` loop per frame: 1.6 ms -> ~0.1 ms for a ``df['missing']`` record."""
    try:
        binary = open(filename, "rb")
    except BaseException:
        binary = _find_source_file(filename)
        if binary is None:
            return False, None
    with binary:
        lines = _decoded_lines(binary)
        if lines is not None:
            return True, (lines[lineno - 1] if 1 <= lineno <= len(lines) else None)
        try:
            binary.seek(0)
        except BaseException:
            return True, None
        # _PyTokenizer_FindEncodingFilename: coding cookie, else utf-8.  A
        # BOM yields "utf-8", so the U+FEFF stays in the first line.
        try:
            encoding, _ = tokenize.detect_encoding(binary.readline)
            if encoding == "utf-8-sig":
                encoding = "utf-8"
        except BaseException:
            encoding = "utf-8"
        try:
            binary.seek(0)
            fob = io.TextIOWrapper(binary, encoding)
        except BaseException:
            return True, None
        line = None
        try:
            for _ in range(lineno):
                # PyFile_GetLine(fob, -1): EOFError at the end, strips "\n"
                s = fob.readline()
                if not s:
                    line = None
                    break
                line = s[:-1] if s.endswith("\n") else s
        except BaseException:
            line = None
        try:
            fob.detach()
        except BaseException:
            pass
    return True, line


_source_lines = {}  # file name -> ((st_dev, st_ino, st_size, st_mtime_ns), lines), oldest first
_source_bytes = 0


def _decoded_lines(binary):
    """The lines of the open file ``binary`` as the loop of _read_real_file_line reads them
    (its encoding, universal newlines, line breaks removed), or None when the whole file does not
    decode (the loop then reads up to the line, as the C code does, and may still find it)."""
    global _source_bytes
    try:
        status = os.fstat(binary.fileno())
        name = binary.name
    except BaseException:
        return None
    key = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    entry = _source_lines.pop(name, None)
    if entry is not None:
        _source_bytes -= entry[0][2]
        if entry[0] == key:
            _remember_lines(name, entry)
            return entry[1]
    try:
        data = binary.read()
    except BaseException:
        return None
    if len(data) != status.st_size:
        return None  # changing while it is read: not kept
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        if encoding == "utf-8-sig":
            encoding = "utf-8"
    except BaseException:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except BaseException:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the text after the last line break is a line only when it is not empty
    _remember_lines(name, (key, lines))
    return lines


def _remember_lines(name, entry):
    global _source_bytes
    size = entry[0][2]
    if size > _SOURCE_CACHE_BYTES:
        return
    while _source_lines and _source_bytes + size > _SOURCE_CACHE_BYTES:
        _source_bytes -= _source_lines.pop(next(iter(_source_lines)))[0][2]
    _source_lines[name] = entry
    _source_bytes += size


def _find_source_file(filename):
    # _Py_FindSourceFile: look for the last path component in sys.path
    tail = filename.rsplit("/", 1)[-1]
    path = sys.__dict__.get("path")
    if not _is_instance(path, list):
        return None
    for entry in list(path):
        if not _is_instance(entry, str):
            continue
        name = entry
        if name and not name.endswith("/"):
            name += "/"
        try:
            return open(name + tail, "rb")
        except BaseException:
            continue
    return None


# ---------------------------------------------------------------------------
# Python/suggestions.c


def _offer_suggestions(exc):
    # _Py_Offer_Suggestions: exact types only, so UnboundLocalError and
    # AttributeError subclasses get no suggestion in 3.11.
    if type(exc) is AttributeError:
        return _offer_suggestions_for_attribute_error(exc)
    if type(exc) is NameError:
        return _offer_suggestions_for_name_error(exc)
    return None


def _offer_suggestions_for_attribute_error(exc):
    name = exc.name
    obj = exc.obj
    if name is None or type(name) is not str:
        return None
    try:
        candidates = dir(obj)
    except BaseException:
        return None
    return _calculate_suggestions(candidates, name)


def _offer_suggestions_for_name_error(exc):
    name = exc.name
    tb = _exc_traceback(exc)
    if name is None or type(name) is not str or tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    for candidates in (lambda: list(frame.f_code.co_varnames),
                       lambda: list(frame.f_globals),
                       lambda: list(frame.f_builtins)):
        try:
            suggestion = _calculate_suggestions(candidates(), name)
        except BaseException:
            suggestion = None
        if suggestion is not None:
            return suggestion
    return None


def _calculate_suggestions(candidates, name):
    # calculate_suggestions, on UTF-8 bytes like the C code. Inside PyKernel the engine replaces
    # it (and _levenshtein_distance) with native ports (Sources/PyKernel/NativeSuggestions.swift).
    if len(candidates) >= _MAX_CANDIDATE_ITEMS:
        return None
    name_bytes = name.encode("utf-8")
    suggestion = None
    suggestion_distance = sys.maxsize
    for item in candidates:
        item_bytes = item.encode("utf-8")   # raises for non-str: no result
        # PyUnicode_CompareWithASCIIString(name, item_str) == 0
        if name == item_bytes.split(b"\0", 1)[0].decode("latin-1"):
            continue
        # No more than 1/3 of the involved characters should need changed.
        max_distance = ((len(name_bytes) + len(item_bytes) + 3)
                        * _MOVE_COST // 6)
        # Don't take matches we've already beaten.
        max_distance = min(max_distance, suggestion_distance - 1)
        distance = _levenshtein_distance(name_bytes, item_bytes,
                                         max_distance)
        if distance > max_distance:
            continue
        if suggestion is None or distance < suggestion_distance:
            suggestion = item
            suggestion_distance = distance
    return suggestion


def _substitution_cost(a, b):
    if (a & 31) != (b & 31):
        return _MOVE_COST
    if a == b:
        return 0
    if 65 <= a <= 90:
        a += 32
    if 65 <= b <= 90:
        b += 32
    return _CASE_COST if a == b else _MOVE_COST


def _levenshtein_distance(a, b, max_cost):
    # levenshtein_distance. Inside PyKernel the engine replaces this function with a native port
    # of the same C code (Sources/PyKernel/NativeSuggestions.swift); this one serves elsewhere.
    if a == b:
        return 0
    # Trim away common affixes.
    pre = 0
    while pre < len(a) and pre < len(b) and a[pre] == b[pre]:
        pre += 1
    a = a[pre:]
    b = b[pre:]
    post = 0
    while (post < len(a) and post < len(b)
           and a[len(a) - 1 - post] == b[len(b) - 1 - post]):
        post += 1
    a = a[:len(a) - post]
    b = b[:len(b) - post]
    if not a or not b:
        return (len(a) + len(b)) * _MOVE_COST
    if len(a) > _MAX_STRING_SIZE or len(b) > _MAX_STRING_SIZE:
        return max_cost + 1
    # Prefer shorter buffer
    if len(b) < len(a):
        a, b = b, a
    # quick fail when a match is impossible.
    if (len(b) - len(a)) * _MOVE_COST > max_cost:
        return max_cost + 1
    buffer = [(i + 1) * _MOVE_COST for i in range(len(a))]
    result = 0
    for b_index, code in enumerate(b):
        distance = result = b_index * _MOVE_COST
        minimum = sys.maxsize
        for index in range(len(a)):
            substitute = distance + _substitution_cost(code, a[index])
            distance = buffer[index]
            insert_delete = min(result, distance) + _MOVE_COST
            result = min(insert_delete, substitute)
            buffer[index] = result
            if result < minimum:
                minimum = result
        if minimum > max_cost:
            # Everything in this row is too expensive
            return max_cost + 1
    return result
