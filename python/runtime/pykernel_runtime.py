"""The Python side of PyKernel's engine: runs inside the embedded interpreter.

The Swift engine imports this module once at start-up and calls the functions below; user code
never needs to import it. Streams write through native functions (no Python frames on the hot
path); everything else is called once per run at most.
"""

import _signal
import _thread
import ast
import atexit
import builtins
import codecs
import errno
import functools
import importlib.machinery
import io
import linecache
import operator
import os
import posix
import resource
import signal
import sys
import threading
import time
import tokenize  # loaded already by pykernel_traceback
import types
import warnings  # loaded so compile-time SyntaxWarnings of cells print with their source
import weakref

import pykernel_traceback

# Like every engine module, this one finds built-in names (``isinstance``, ``Exception``, the
# ``__import__`` its ``import`` statements call) in a copy of ``builtins`` taken as the engine
# started (PyOwned.module(named:source:)): the code's rebinding them leaves the engine working, as
# it leaves python3's C code. What the engine must see as the code left it, it reads from the
# ``builtins`` module itself.

_ENGINE_FILENAME_PREFIX = "<pykernel/"
_MISSING = object()

# An exception's fields as python3's C code reads them (PyException_GetTraceback, Py_TYPE, the
# group's ``excs``), never through the attribute access its class may customise (a
# ``__getattribute__`` or property that raises, a group's ``exceptions`` that gives other objects):
# the printer port's readers.
_traceback_of = pykernel_traceback._exc_traceback
_set_traceback = BaseException.__traceback__.__set__
_cause_of = pykernel_traceback._exc_cause
_context_of = pykernel_traceback._exc_context
_members_of = pykernel_traceback._group_excs
_is_instance = pykernel_traceback._is_instance


class ExecutionTimeout(BaseException):
    """Raised in user code whose run exceeded its timeout.

    A BaseException (like KeyboardInterrupt), so ordinary ``except Exception`` handlers do not
    swallow it; it prints and reports as ``TimeoutError``.
    """


ExecutionTimeout.__name__ = ExecutionTimeout.__qualname__ = "TimeoutError"
ExecutionTimeout.__module__ = "builtins"


class KernelBinaryStream(io.BufferedIOBase):
    """``sys.stdout.buffer``: bytes go to the run's output as they are.

    A ``BufferedIOBase``, as python3's ``BufferedWriter``: its ``read``, ``read1``, ``readinto``
    and ``readinto1`` raise what that one's raise (``UnsupportedOperation('read')``...)."""

    # Kept out of the instance's ``__dict__``, where only the code's own attributes go (see
    # ``restore_streams``).
    __slots__ = ("name", "_fd")
    mode = "wb"

    def __init__(self, name, fd):
        super().__init__()
        self.name = name
        self._fd = fd

    def __repr__(self):
        return f"<_io.BufferedWriter name={self.name!r}>"

    # What python3's BufferedWriter on a pipe raises.
    def seek(self, pos, whence=0):
        _fail_seeking_a_pipe(whence)

    def tell(self):
        raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))

    def truncate(self, pos=None):
        _fail_truncating_a_pipe(pos)

    def writable(self):
        return True

    def fileno(self):
        if self._fd is None:
            raise io.UnsupportedOperation("fileno")
        return self._fd

    def close(self):
        """Kept open: closing a captured stream would lose the rest of the run's output."""


def _fail_seeking_a_pipe(whence):
    """What python3's ``seek`` of a ``BufferedWriter`` or ``BufferedReader`` on a pipe raises: its
    checks of ``whence`` (a C ``int``, one lseek knows), then that the file cannot seek. (Its
    ``tell`` fails as the file's lseek does: ``ESPIPE``.)"""
    whence = operator.index(whence)
    if not -(1 << 31) <= whence < 1 << 31:
        raise OverflowError("Python int too large to convert to C int")
    if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, os.SEEK_DATA, os.SEEK_HOLE):
        raise ValueError(f"whence value {whence} unsupported")
    raise io.UnsupportedOperation("File or stream is not seekable.")


def _fail_truncating_a_pipe(pos):
    """What python3's ``truncate`` of a stream on a pipe raises (its ``FileIO``'s): the pipe's
    lseek fails, for the position, else the position is converted and its ftruncate fails."""
    if pos is None:
        code = errno.ESPIPE
    else:
        operator.index(pos)
        code = errno.EINVAL
    raise OSError(code, os.strerror(code))


class _StreamAttribute:
    """An attribute of the standard streams that ``TextIOWrapper`` has read-only: reads
    ``_NAME`` (or, for ``setting``, the attribute of the stream's settings for the calling code's
    context); setting or deleting it raises CPython's message."""

    def __init__(self, message, setting=False):
        self._message = message
        self._setting = setting

    def __set_name__(self, owner, name):
        self._field = "_" + name
        self._message = self._message.format(name=name)
        if self._setting:
            self._setting = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        if self._setting:  # one of the settings of the calling code's context (``reconfigure``)
            return getattr(instance._caller_settings(), self._setting)
        return getattr(instance, self._field)

    def __set__(self, instance, value):
        raise AttributeError(self._message)

    def __delete__(self, instance):
        raise AttributeError(self._message)


_READONLY_MEMBER = "readonly attribute"
_READONLY_PROPERTY = "attribute '{name}' of '_io.TextIOWrapper' objects is not writable"


class _StreamSettings:
    """What ``TextIOWrapper.reconfigure`` sets on one of the engine's text streams, for one context
    (``stream_contexts``), or the stream's defaults (python3's on a pipe): the attributes code
    reads, and how a write turns text into the bytes written."""

    __slots__ = ("encoding", "errors", "newline", "line_buffering", "write_through", "translated", "encode", "native")

    def __init__(self, errors, line_buffering):
        self.encoding = "utf-8"
        self.errors = errors
        self.newline = None  # as given to ``reconfigure`` (``TextIOWrapper``'s default)
        self.translated = None  # what a write's "\n" becomes, None when it stays
        self.line_buffering = line_buffering
        self.write_through = False
        self.encode = _text_encoder("utf-8", errors)
        self.native = True  # whether the native ``write`` writes the same bytes

    def copy(self):
        """The same settings (and the same encoder: what it wrote so far is the stream's)."""
        settings = object.__new__(_StreamSettings)
        for name in _StreamSettings.__slots__:
            setattr(settings, name, getattr(self, name))
        return settings

    def set_newline(self, newline):
        """``TextIOWrapper``'s ``set_newline`` for writing: ``None`` is ``os.linesep`` ("\\n"),
        ``""`` and ``"\\n"`` write "\\n" as it is, ``"\\r"`` and ``"\\r\\n"`` replace it."""
        self.newline = newline
        self.translated = newline if newline in ("\r", "\r\n") else None

    def values(self):
        """What code sees of them (settings that are the defaults' are dropped)."""
        return (self.encoding, self.errors, self.newline, self.line_buffering, self.write_through)


def _text_encoder(encoding, errors):
    """``encode(text)`` of python3's ``TextIOWrapper`` on a pipe with that encoding and error
    handler, made as its ``reconfigure`` makes one: the codec's incremental encoder, so a codec that
    starts with a byte order mark (``utf-8-sig``) writes it once per encoder, at its first write.
    ``utf-16`` and ``utf-32`` are written by the wrapper's own fast encoders, which write no byte
    order mark unless the stream is at its start, which a pipe never is (it cannot tell): their
    bytes are the native byte order's, without one. So are the other codecs the wrapper encodes
    in C (``_C_ENCODED``), stateless. Raises python3's ``LookupError`` for an
    unknown encoding or one that is not a text encoding (``hex``)."""
    info = _lookup_text_encoding(encoding)
    if info.name in ("utf-16", "utf-32"):
        native_order = codecs.lookup(f"{info.name}-{'le' if sys.byteorder == 'little' else 'be'}").encode
        return lambda text: native_order(text, errors)[0]
    if info.name in _C_ENCODED:
        # The wrapper's own C encoder, which is the codec's stateless ``encode`` (as its
        # incremental encoder is stateless): an error raised there shows no frame of the codec's
        # Python module (``encodings/ascii.py``, line 22, in encode) in a traceback.
        stateless = info.encode
        return lambda text: stateless(text, errors)[0]
    return info.incrementalencoder(errors).encode


# The encodings python3's ``TextIOWrapper`` writes with C encoders of its own, by their codecs'
# names (``encodefuncs`` in Modules/_io/textio.c; ``utf-16`` and ``utf-32``: see above).
_C_ENCODED = frozenset(("ascii", "iso8859-1", "utf-8", "utf-16-be", "utf-16-le", "utf-32-be", "utf-32-le"))


def _lookup_text_encoding(encoding):
    """``codecs.lookup(encoding)`` as ``TextIOWrapper`` looks an encoding up: one that is not a
    text encoding (``hex``, ``rot13``) raises python3's ``LookupError``."""
    info = codecs.lookup(encoding)
    if not getattr(info, "_is_text_encoding", True):
        raise LookupError(f"'{encoding[:400]}' is not a text encoding; use codecs.open() to handle arbitrary codecs")
    return info


def _reconfigured_encoding(settings, encoding, errors):
    """``(encoding, errors)`` as python3's ``reconfigure`` takes them when one of them or a newline
    was given: the current ones where none is given, ``"strict"`` for a new encoding without an
    error handler, the locale's for ``encoding="locale"``; checked as CPython converts them."""
    if encoding is None:
        encoding = settings.encoding
        if errors is None:
            errors = settings.errors
    else:
        if encoding == "locale":
            import locale
            encoding = locale.getencoding()
        if errors is None:
            errors = "strict"
    _c_string(errors)
    _c_string(encoding)
    return encoding, errors


def _calling_context():
    """The context of the calling code: the running one on the interpreter thread, else the one
    that started the thread (the running one for a thread no context started); ``None`` before
    any run."""
    owner = thread_owner()
    return _current_context if owner is None else owner


def _own_settings(stream):
    """``(context, settings)`` of one of the engine's streams (``KernelStream``, ``KernelInput``):
    the calling code's context and its own settings (a copy of the stream's defaults at its first
    ``reconfigure``); ``(None, defaults)`` when no context runs."""
    owner = _calling_context()
    if owner is None:
        return None, stream._default
    settings = stream._contexts.get(owner)
    if settings is None:
        settings = stream._contexts[owner] = stream._default.copy()
    return owner, settings


def _c_string(value):
    """What CPython's ``PyUnicode_AsUTF8`` takes of a ``reconfigure`` argument: a ``str`` (else
    its ``TypeError``) that encodes as UTF-8 (else its ``UnicodeEncodeError``), up to a null
    character."""
    if not isinstance(value, str):
        raise TypeError("bad argument type for built-in operation")
    value.encode("utf-8")
    return value.partition("\0")[0]


def _optional_flag(value, current):
    """``line_buffering`` or ``write_through`` as python3's ``reconfigure`` converts it: ``None``
    keeps the current one; anything else is an integer (``__index__``, a C ``long``) taken as true
    when not 0."""
    if value is None:
        return current
    value = operator.index(value)
    if not -(1 << 63) <= value < 1 << 63:
        raise OverflowError("Python int too large to convert to C long")
    return value != 0


class KernelStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of every context: text goes to the running code's output.

    It passes for python3's ``_io.TextIOWrapper`` on a pipe where code or messages show it: the
    engine gives its classes ``_io.TextIOWrapper`` as the type name CPython's messages print
    (``unsupported operand type(s) for >>: 'builtin_function_or_method' and
    '_io.TextIOWrapper'``), and its ``__name__``, ``__qualname__`` and ``__module__`` are
    ``TextIOWrapper``'s. Its ``write`` and ``flush`` are native (set by the engine on the class).

    What ``reconfigure`` sets is the calling code's context's (``_stream_contexts``): the stream
    holds the settings of the context whose run is in progress (``_settings``), those of each
    context that reconfigured it, and its defaults, python3's on a pipe."""

    # Kept out of the instance's ``__dict__``, where only the code's own attributes go (see
    # ``restore_streams``), and ``reconfigure``'s ``write``.
    __slots__ = ("_name", "_fd", "_buffer", "_newlines", "_native_errors", "_settings", "_default", "_contexts")
    name = _StreamAttribute(_READONLY_PROPERTY)
    buffer = _StreamAttribute(_READONLY_MEMBER)
    newlines = _StreamAttribute(_READONLY_PROPERTY)
    encoding = _StreamAttribute(_READONLY_MEMBER, setting=True)
    errors = _StreamAttribute(_READONLY_PROPERTY, setting=True)
    line_buffering = _StreamAttribute(_READONLY_MEMBER, setting=True)
    write_through = _StreamAttribute(_READONLY_MEMBER, setting=True)
    mode = "w"
    _CHUNK_SIZE = 8192

    def __init__(self, name, fd, write_bytes, flush):
        super().__init__()
        self._name = name
        self._fd = fd
        self._buffer = _with_write(KernelBinaryStream, write_bytes, flush)(name, fd)
        self._newlines = None
        # What the native write does with lone surrogates, as python3's streams in a UTF-8 locale.
        self._native_errors = "surrogateescape" if name == "<stdout>" else "backslashreplace"
        # python3's on a pipe: stderr is line-buffered. The engine writes every text at once
        # whatever these say (and ``reconfigure`` only records them).
        self._default = self._settings = _StreamSettings(self._native_errors, line_buffering=name == "<stderr>")
        self._contexts = {}  # context -> its settings, for the contexts whose code reconfigured the stream

    def __repr__(self):
        return f"<_io.TextIOWrapper name={self._name!r} mode={self.mode!r} encoding={self.encoding!r}>"

    def __reduce_ex__(self, protocol):
        # object's: copyreg's message below protocol 2, its own from 2 on.
        if protocol < 2:
            self.__reduce__()
        raise TypeError("cannot pickle '_io.TextIOWrapper' object")

    def __reduce__(self):
        raise TypeError("cannot pickle 'TextIOWrapper' object")

    def reconfigure(self, *, encoding=None, errors=None, newline=_MISSING, line_buffering=None,
                    write_through=None):
        """``TextIOWrapper.reconfigure`` as python3.11's on a pipe, for the calling code's context:
        its checks, errors and order (a newline is set before the encoding is looked up, so it
        stays when that fails). A new encoding, error handler or newline makes a new encoder
        (``utf-8-sig`` writes its byte order mark again, as python3's does); a newline other than
        ``None``, ``""`` and ``"\\n"`` replaces each "\\n" written. ``line_buffering`` and
        ``write_through`` are only recorded: the engine takes every write at once."""
        if newline is not _MISSING and newline is not None:
            newline = _c_string(newline)
            if newline not in ("", "\n", "\r", "\r\n"):
                raise ValueError(f"illegal newline value: {newline}")
        current = self._caller_settings()
        line_buffering = _optional_flag(line_buffering, current.line_buffering)
        write_through = _optional_flag(write_through, current.write_through)
        self.flush()
        owner, settings = _own_settings(self)
        try:
            if newline is not _MISSING:
                settings.set_newline(newline)
            if encoding is not None or errors is not None or newline is not _MISSING:
                encoding, errors = _reconfigured_encoding(settings, encoding, errors)
                settings.encode = _text_encoder(encoding, errors)
                settings.encoding, settings.errors = encoding, errors
            settings.line_buffering, settings.write_through = line_buffering, write_through
        finally:
            self._settings_changed(owner, settings)

    def _caller_settings(self):
        """The settings of the calling code's context: the running one's on the interpreter
        thread (``_settings``), else those of the context that started the thread."""
        if not stream_contexts or _thread.get_ident() == _interpreter_thread:
            return self._settings
        owner = thread_owner()
        return self._settings if owner is None else self._contexts.get(owner, self._default)

    def _settings_changed(self, owner, settings):
        """After ``reconfigure``: whether the native ``write`` writes with them, a context's
        settings that are the defaults again dropped, and the running context's in use."""
        settings.native = (settings.translated is None and settings.errors == self._native_errors
                           and codecs.lookup(settings.encoding).name == "utf-8")
        if owner is not None:
            if settings.native and self._default.native and settings.values() == self._default.values():
                del self._contexts[owner]
            _note_stream_contexts(owner)
        if not stream_contexts:
            apply_stream_settings(_NOBODY)
        elif _thread.get_ident() == _interpreter_thread or owner == _applied_stream_context:
            apply_stream_settings(_applied_stream_context if owner is None else owner)

    def _use(self, settings):
        """Makes ``settings`` the ones of the run in progress: ``write`` is the native one when it
        writes them (UTF-8, the stream's error handler, no newline translation), else
        ``_encoded_write`` (kept on the instance; a ``write`` the code set stays)."""
        self._settings = settings
        write = self.__dict__.get("write")
        if write is not None and not _reconfigured_write(self, "write", write):
            return
        if settings.native:
            self.__dict__.pop("write", None)
        elif write is None:
            self.write = self._encoded_write

    def _encoded_write(self, text):
        """``write`` with the settings of the calling code's context when the native one does not
        write them: set on the stream for a run whose context has such settings, and called by the
        native ``write`` for the writes of other threads while some context has settings of its
        own (the settings of a thread's context are the ones it writes with)."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {'None' if text is None else type(text).__name__}")
        settings = self._caller_settings()
        if settings.native:
            data = text.encode("utf-8", self._native_errors)
        elif settings.translated is not None and "\n" in text:
            data = settings.encode(text.replace("\n", settings.translated))
        else:
            data = settings.encode(text)
        self._buffer.write(data)
        return len(text)

    def detach(self):
        """The binary ``buffer``; the stream itself stays usable (every context shares it)."""
        return self.buffer

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        if self._fd is None:
            raise io.UnsupportedOperation("fileno")
        return self._fd

    # What python3's TextIOWrapper on a pipe raises.
    def read(self, size=-1):
        raise io.UnsupportedOperation("not readable")

    def readline(self, size=-1):
        raise io.UnsupportedOperation("not readable")

    def readlines(self, hint=-1):
        raise io.UnsupportedOperation("not readable")

    def seek(self, cookie, whence=0):
        raise io.UnsupportedOperation("underlying stream is not seekable")

    def tell(self):
        raise io.UnsupportedOperation("underlying stream is not seekable")

    def truncate(self, pos=None):
        _fail_truncating_a_pipe(pos)

    def close(self):
        """Kept open: closing a captured stream would lose the rest of the run's output."""


def _no_stdin(request):
    """Until the engine installs ``request_input``: no run has standard input."""
    return False


# Set by the engine: ``_request_input((prompt, password))`` asks the client of the run in progress
# for a line (``code.input_request``) and returns it, ``None`` at end of file, or ``False`` when the
# run has no standard input (no ``allow_stdin``, or a thread of another context). It waits without
# the GIL; a stop (timeout, interrupt) raises where the code is.
_request_input = _no_stdin


def _no_input_run():
    """Until the engine installs ``input_run``: no run has standard input."""
    return None


# Set by the engine: ``_input_run()`` is the serial number of the run whose standard input the
# calling thread reads (as ``_request_input`` decides), or ``None``.
_input_run = _no_input_run


def _no_wait_for_input():
    """Until the engine installs ``wake_for_signal``: nothing waits for input."""


# Set by the engine: ``_wake_for_signal()`` has a wait for input on the interpreter thread run the
# signal handlers now, after a signal was tripped without being sent (``_interrupt_main``).
_wake_for_signal = _no_wait_for_input


def _interrupt_main(signum=signal.SIGINT):
    """``_thread.interrupt_main(signum)`` that also ends a wait for input on the main thread, as
    the real signal ends python3's read of standard input (its handler runs while ``input()``
    waits)."""
    _thread.interrupt_main(signum)
    _wake_for_signal()


class _InputSettings:
    """What ``reconfigure`` sets on ``sys.stdin`` for one context (``input_contexts``), or its
    defaults (python3's on a pipe in a UTF-8 locale), and whether that context's reads left
    python3's stream holding decoded text."""

    __slots__ = ("encoding", "errors", "newline", "line_buffering", "write_through", "decoding")

    def __init__(self):
        # The client's answers are text: another encoding or error handler decodes their UTF-8 as
        # python3 would decode those bytes.
        self.encoding = "utf-8"
        self.errors = "surrogateescape"
        self.newline = None
        self.line_buffering = self.write_through = False
        self.decoding = False

    def copy(self):
        """The same settings, for a context's own."""
        settings = object.__new__(_InputSettings)
        for name in _InputSettings.__slots__:
            setattr(settings, name, getattr(self, name))
        return settings

    def values(self):
        """All of them (settings that are the defaults' are dropped)."""
        return (self.encoding, self.errors, self.newline, self.line_buffering, self.write_through, self.decoding)


class KernelInput(io.TextIOBase):
    """``sys.stdin``: in a run with ``allow_stdin`` each line read is asked of the client; otherwise
    reading fails at once instead of hanging.

    It passes for python3's ``_io.TextIOWrapper`` on a pipe as ``KernelStream`` does (its class is
    named so: see ``_stdin_class``): its attributes, ``repr``, ``reconfigure`` and the errors of
    writing and seeking are that stream's."""

    MESSAGE = ("input() is not supported here: the code runs without standard input. "
               "Pass data in the code, through a file, or with the run's env instead.")
    name = _StreamAttribute(_READONLY_PROPERTY)
    buffer = _StreamAttribute(_READONLY_MEMBER)
    newlines = _StreamAttribute(_READONLY_PROPERTY)
    encoding = _StreamAttribute(_READONLY_MEMBER, setting=True)
    errors = _StreamAttribute(_READONLY_PROPERTY, setting=True)
    line_buffering = _StreamAttribute(_READONLY_MEMBER, setting=True)
    write_through = _StreamAttribute(_READONLY_MEMBER, setting=True)
    mode = "r"
    # Kept out of the instance's ``__dict__``, where only the code's own attributes go (see
    # ``restore_streams``).
    __slots__ = ("_fd", "_unread", "_decoding", "_run", "_name", "_buffer", "_newlines", "_default", "_contexts")

    def __init__(self, fd):
        super().__init__()
        self._fd = fd
        self._unread = ""  # what a size-limited read left of the last answer, decoded
        self._decoding = None  # ((encoding, errors), its incremental decoder)
        self._run = None  # the run that answer belongs to (``_input_run()``)
        self._name = "<stdin>"
        self._buffer = _KernelInputBytes(self)
        self._newlines = None
        self._default = _InputSettings()
        self._contexts = {}  # context -> its settings, for the contexts whose code reconfigured or read the stream

    def __repr__(self):
        return f"<_io.TextIOWrapper name={self._name!r} mode={self.mode!r} encoding={self.encoding!r}>"

    __reduce_ex__ = KernelStream.__reduce_ex__
    __reduce__ = KernelStream.__reduce__

    def reconfigure(self, *, encoding=None, errors=None, newline=_MISSING, line_buffering=None,
                    write_through=None):
        """``TextIOWrapper.reconfigure`` with python3's checks, errors and order, for the calling
        code's context (as ``KernelStream``'s). The encoding and error handler decode what the
        client answers next; ``newline``, ``line_buffering`` and ``write_through`` are only
        recorded (answers are lines ending in ``\\n``)."""
        current = self._caller_settings()
        # python3's keeps what it decoded from a line or sized read (even all used) until a read of all.
        if current.decoding and (encoding is not None or errors is not None or newline is not _MISSING):
            raise io.UnsupportedOperation("It is not possible to set the encoding or newline of stream after the first read")
        if newline is not _MISSING and newline is not None:
            newline = _c_string(newline)
            if newline not in ("", "\n", "\r", "\r\n"):
                raise ValueError(f"illegal newline value: {newline}")
        line_buffering = _optional_flag(line_buffering, current.line_buffering)
        write_through = _optional_flag(write_through, current.write_through)
        owner, settings = _own_settings(self)
        try:
            if newline is not _MISSING:
                settings.newline = newline
            if encoding is not None or errors is not None or newline is not _MISSING:
                encoding, errors = _reconfigured_encoding(settings, encoding, errors)
                _lookup_text_encoding(encoding)
                settings.encoding, settings.errors = encoding, errors
            settings.line_buffering, settings.write_through = line_buffering, write_through
        finally:
            self._settings_changed(owner, settings)

    def _caller_settings(self):
        """The settings of the calling code's context (see ``KernelStream._caller_settings``)."""
        return self._contexts.get(_calling_context(), self._default) if self._contexts else self._default

    def _settings_changed(self, owner, settings):
        """A context's settings that are the defaults again are dropped; ``input_contexts``."""
        if owner is None:
            return
        if settings.values() == self._default.values():
            del self._contexts[owner]
            input_contexts.discard(owner)
        else:
            input_contexts.add(owner)

    def _note_decoding(self, decoding):
        """Whether python3's stream of the calling code's context would now hold decoded text
        (after a line or sized read, until a read of all), which ``reconfigure`` refuses to
        change the encoding or newline of."""
        if self._caller_settings().decoding != decoding:
            owner, settings = _own_settings(self)
            settings.decoding = decoding
            self._settings_changed(owner, settings)

    def detach(self):
        """The binary ``buffer``; the stream itself stays usable (every context shares it)."""
        return self._buffer

    def readable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        if self._fd is None:
            raise io.UnsupportedOperation("fileno")
        return self._fd

    # What python3's TextIOWrapper on a pipe raises.
    def write(self, text):
        raise io.UnsupportedOperation("not writable")

    def seek(self, cookie, whence=0):
        raise io.UnsupportedOperation("underlying stream is not seekable")

    def tell(self):
        raise io.UnsupportedOperation("underlying stream is not seekable")

    def _answer(self):
        """The client's next line as the bytes one read of python3's pipe gets (what the line's
        writer wrote: UTF-8, ``\\n`` added); ``b""`` at end of file."""
        answer = _request_input(("", False))
        if answer is False:
            raise EOFError(self.MESSAGE)
        if answer is None:
            return b""
        self._run = _input_run()
        return (answer + "\n").encode("utf-8", "surrogateescape")

    def _fill(self):
        """Decodes what ``buffer`` holds, else the client's next line, into the text read next, as
        python3's ``TextIOWrapper`` takes what its ``BufferedReader`` holds, else one read of the
        pipe (a read of text after one of bytes goes on where the bytes stopped); ``False`` at end
        of file."""
        data, self._buffer._pending = self._buffer._pending, b""
        if not data:
            data = self._answer()
        self._unread += self._decoder().decode(data, not data)
        return bool(data)

    def _decoder(self):
        """The incremental decoder of the calling code's context's encoding and error handler; it
        keeps what a read of bytes left of a character for the text read next."""
        settings = self._caller_settings()
        key = (settings.encoding, settings.errors)
        if self._decoding is None or self._decoding[0] != key:
            self._decoding = (key, codecs.getincrementaldecoder(settings.encoding)(settings.errors))
        return self._decoding[1]

    def _decoded(self, answer):
        """An answer of the client as python3 decodes its bytes (UTF-8) with the stream's
        encoding and error handler (``input()`` reads so too)."""
        settings = self._caller_settings()
        if settings.errors != "surrogateescape" or settings.encoding != "utf-8":
            return answer.encode("utf-8", "surrogateescape").decode(settings.encoding, settings.errors)
        return answer

    def _drop_stale(self):
        """Forgets what reads left of an answer that is not the current run's: another run's
        input is never read by this one (of this context or another, with ``allow_stdin`` or not)."""
        if self._run is not None and _input_run() != self._run:
            self._unread = ""
            self._buffer._pending = b""
            self._decoding = None
            self._run = None

    def _has_kept(self):
        """Whether a read left part of this run's answer, as text, as bytes in ``buffer`` or as
        part of a character (``input()`` reads it first, as python3)."""
        self._drop_stale()
        return bool(self._unread or self._buffer._pending
                    or (self._decoding is not None and self._decoding[1].getstate()[0]))

    def readline(self, size=-1):
        size = -1 if size is None else size.__index__()
        self._note_decoding(True)
        self._drop_stale()
        while "\n" not in self._unread and (size < 0 or len(self._unread) < size) and self._fill():
            pass
        end = self._unread.find("\n") + 1 or len(self._unread)
        if size >= 0:
            end = min(end, size)
        line, self._unread = self._unread[:end], self._unread[end:]
        return line

    def read(self, size=-1):
        size = -1 if size is None else size.__index__()
        self._drop_stale()
        while (size < 0 or len(self._unread) < size) and self._fill():
            pass
        end = len(self._unread) if size < 0 else min(size, len(self._unread))
        text, self._unread = self._unread[:end], self._unread[end:]
        self._note_decoding(size >= 0)
        return text

    def close(self):
        pass


class _KernelInputBytes(io.BufferedIOBase):
    """``sys.stdin.buffer`` of a ``KernelInput``: the client's lines as UTF-8 bytes, as python3's
    ``BufferedReader`` on a pipe: what a read of text took (a whole answer) is not read again
    here, and what a read here left is where a read of text goes on."""

    mode = "rb"
    __slots__ = ("_text", "_pending")

    def __init__(self, text):
        super().__init__()
        self._text = text
        self._pending = b""  # what a size-limited read left of the last line

    @property
    def name(self):
        return self._text.name

    def __repr__(self):
        return f"<_io.BufferedReader name={self.name!r}>"

    def readable(self):
        return True

    def fileno(self):
        return self._text.fileno()

    # What python3's BufferedReader on a pipe raises.
    def seek(self, pos, whence=0):
        _fail_seeking_a_pipe(whence)

    def tell(self):
        raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))

    def _take(self, size, line):
        """Up to ``size`` bytes (all for a negative size), or up to the end of a line."""
        self._text._drop_stale()
        while (size < 0 or len(self._pending) < size) and not (line and b"\n" in self._pending):
            data = self._text._answer()
            if not data:
                break
            self._pending += data
        end = len(self._pending) if size < 0 else min(size, len(self._pending))
        if line:
            newline = self._pending.find(b"\n", 0, end)
            end = end if newline < 0 else newline + 1
        data, self._pending = self._pending[:end], self._pending[end:]
        return data

    def read(self, size=-1):
        return self._take(-1 if size is None else size.__index__(), line=False)

    def read1(self, size=-1):
        """What is kept, else one answer's line: as python3's ``read1`` on a pipe, one read, which
        returns what the line's writer wrote (a reader wrapping ``sys.stdin.buffer`` gets each
        line as it is answered, not after the client's end of file)."""
        size = -1 if size is None else size.__index__()
        self._text._drop_stale()
        if not self._pending and size != 0:
            self._pending = self._text._answer()
        end = len(self._pending) if size < 0 else min(size, len(self._pending))
        data, self._pending = self._pending[:end], self._pending[end:]
        return data

    def readline(self, size=-1):
        return self._take(-1 if size is None else size.__index__(), line=True)

    def peek(self, size=0):
        """As python3's ``BufferedReader.peek`` on a pipe: what is kept, else one answer's line
        (asked for as a read asks), all of it whatever ``size``, and left for the next read."""
        size.__index__()
        self._text._drop_stale()
        if not self._pending:
            self._pending = self._text._answer()
        return self._pending

    def readinto(self, target):
        data = self.read(len(target))
        memoryview(target).cast("B")[:len(data)] = data
        return len(data)

    def close(self):
        pass


_original_input = builtins.input


def input(prompt="", /):
    """``builtins.input``: with ``allow_stdin`` the client answers (the prompt is sent with the
    request, not written to the run's stdout: only to a stream the code put in its place, as
    python3 writes it to ``sys.stdout``); otherwise the built-in (``EOFError`` at once)."""
    if sys.stdin is _streams[2]:
        prompt_written = _write_prompt_if_redirected(prompt)
        if _streams[2]._has_kept():
            # What a read left of the last answer comes first, as python3 reads the rest of a
            # line a partial read left in its buffer (nothing is asked: no prompt is sent).
            return _original_input()
        answer = _request_input((str(prompt), False))
        if answer is None:
            raise EOFError("EOF when reading a line")
        if answer is not False:
            sys.stdin._note_decoding(True)  # python3's input() reads a line of it
            return sys.stdin._decoded(answer)
        if prompt_written:
            return _original_input()
    return _original_input(prompt)


def _write_prompt_if_redirected(prompt):
    """What python3's ``input()`` does with ``sys.stdout`` before it reads a pipe, when the code
    replaced the run's stdout (``contextlib.redirect_stdout``): writes the prompt there and
    flushes it; whether it wrote. ``RuntimeError`` when the code deleted ``sys.stdout`` or set it
    to ``None``, as python3's."""
    stdout = getattr(sys, "stdout", None)
    if stdout is None:
        raise RuntimeError("input(): lost sys.stdout")
    if stdout is _streams[0]:
        return False
    if prompt:
        stdout.write(str(prompt))
    try:
        stdout.flush()
    except Exception:
        pass  # python3 ignores a failed flush here
    return True


def _install_getpass():
    """``getpass.getpass`` asks the client (``password: true``) in a run with ``allow_stdin``."""
    import getpass

    original = getpass.getpass

    def getpass_(prompt="Password: ", stream=None):
        if sys.stdin is _streams[2]:
            answer = _request_input((str(prompt), True))
            if answer is None:
                raise EOFError
            if answer is False:
                # No standard input in this run: as ``input()`` (CPython's getpass would ask the
                # terminal the server was started from). The prompt goes where getpass writes it
                # without a terminal.
                (stream or sys.stderr).write(str(prompt))
                raise EOFError(KernelInput.MESSAGE)
            return answer
        return original(prompt, stream)

    getpass.getpass = _posing_as(original, getpass_)


class _CellCache(dict):
    """``linecache.cache`` that also finds the current context's cells (``<cell-N>`` sources).

    Cells are kept per context so two contexts' ``<cell-1>`` never mix up each other's source.
    """

    __slots__ = ()

    def __contains__(self, filename):
        return dict.__contains__(self, filename) or filename in _cells_of(filename)

    def __getitem__(self, filename):
        try:
            return dict.__getitem__(self, filename)
        except KeyError:
            return _cell_entry(filename)

    def get(self, filename, default=None):
        try:
            return self[filename]
        except KeyError:
            return default


_current_cells = {}
# id(filename) -> (filename, cells) for the cells kept after their run (their functions, classes
# or saved tracebacks may show up in another context's run): the ``<cell-N>`` of a code object is
# its context's, found by the identity of its filename, not by the name every context has.
_kept_cells = {}


class _ShownInThisRun:
    """The value ``warnings`` keeps in a registry for a warning shown at a cell's top level, true
    only while that cell runs. The registry's keys are ``(text, category, line)``, with no file:
    cells share their context's globals, so a warning at the same line of a later cell (a library's
    deprecation at a cell's line 1) was taken for one shown already and hidden, where python3 shows
    each location of a file. A cell's top level never runs again (a cell run again is a new cell),
    so its warnings need not stay marked; a function's line stays marked (``_ShownAtLineOf``)."""

    __slots__ = ("_code",)

    def __init__(self, code):
        self._code = weakref.ref(code)

    def __reduce__(self):
        return (bool, (True,))  # pickled or copied with the namespace (dill's sessions): a shown warning

    def __bool__(self):
        code = self._code()
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code is code:
                return True
            frame = frame.f_back
        return False


class _ShownAtLineOf:
    """The value ``warnings`` keeps in a registry for a warning shown at a line of a function (or
    class body) of a cell: true (shown, as python3 keeps it) unless the line warning now is that
    line number of another cell of the context (its top level, or a function of its own), which
    python3 would show as another file's line. The warning's location is the first frame from the
    top at that line number."""

    __slots__ = ("_filename", "_lineno")

    def __init__(self, filename, lineno):
        self._filename = filename
        self._lineno = lineno

    def __reduce__(self):
        return (bool, (True,))  # as ``_ShownInThisRun``'s

    def __bool__(self):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_lineno == self._lineno:
                filename = frame.f_code.co_filename
                if filename == self._filename:
                    return True
                if filename in _current_cells:
                    return False
            frame = frame.f_back
        return True


# Code run inline where it is written, called by the code around it: a comprehension at a cell's
# top level is that top level's line.
_INLINE_SCOPES = frozenset(("<listcomp>", "<setcomp>", "<dictcomp>"))


def _shown_mark(frame, filename, lineno):
    """What a registry keeps for a warning just shown at ``frame``'s line of the cell ``filename``:
    at the cell's top level (a comprehension there too) true while that cell runs, in a function
    of the cell true for that cell's line only."""
    top = frame
    while top.f_code.co_name in _INLINE_SCOPES and top.f_back is not None and top.f_back.f_code.co_filename == filename:
        top = top.f_back
    if top.f_code.co_name == "<module>":
        return _ShownInThisRun(top.f_code)
    return _ShownAtLineOf(filename, lineno)


def _marking_cell_level_warnings(show):
    """``warnings._showwarnmsg`` that marks a warning shown at a line of a cell as shown at that
    cell's line only (``_shown_mark``), not at the same line number of the context's other cells."""

    def _showwarnmsg(msg):
        try:
            if msg.filename in _current_cells:
                frame = sys._getframe(1)
                while frame is not None:
                    code = frame.f_code
                    if code.co_filename == msg.filename and frame.f_lineno == msg.lineno:
                        registry = frame.f_globals.get("__warningregistry__")
                        key = (str(msg.message), msg.category, msg.lineno)
                        if type(registry) is dict and registry.get(key) is True:
                            registry[key] = _shown_mark(frame, msg.filename, msg.lineno)
                        break
                    frame = frame.f_back
        except Exception:
            pass  # an odd message or registry: the warning is shown, as it would be
        return show(msg)

    return _posing_as(show, _showwarnmsg)


def _cells_of(filename):
    """The cell store a filename is looked up in: its context's when it is the filename object of
    a kept cell's code, else the current context's (a name given as text, a running cell)."""
    kept = _kept_cells.get(id(filename))
    if kept is not None and kept[0] is filename:
        return kept[1]
    return _current_cells


def _cell_entry(filename):
    """The ``linecache`` entry of a cell (of the context whose code it is; see ``_cells_of``).
    Runs store a cell's source as it is; it is split into lines the first time something reads it
    (most never are), as python3's ``linecache`` reads a file: at ``\n``, ``\r\n`` and ``\r``
    only, each ending in ``\n`` (``str.splitlines`` also splits at ``\f``, ``\x85``, U+2028...,
    which the compiler does not: every later line would be off by one)."""
    cells = _cells_of(filename)
    entry = cells[filename]
    if type(entry) is str:
        entry = (len(entry), None, _source_lines(entry), filename)
        cells[filename] = entry
    return entry


def _source_lines(source):
    """``source`` in lines as python3's ``linecache`` reads a file (universal newlines)."""
    lines = io.StringIO(source, newline=None).readlines()
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _cell_source(filename):
    """``pykernel_traceback.registered_source``: the source of a cell (of the context whose code
    it is), or None. An entry code put in ``linecache.cache`` itself is not the engine's: python3
    shows no line for it."""
    entry = _cells_of(filename).get(filename)
    if entry is None:
        return None
    return entry if type(entry) is str else "".join(entry[2])


def end_cells(cells):
    """A context's end (its deletion, a program's end): the sources of its cells go, but for the
    kept ones (``keep_cell_while_used``), which stay registered with their source until the last of
    their code is freed: a function the context left in ``builtins`` or in another context still
    shows its own lines in a traceback (not the lines of the running context's cell of the same
    name), and ``inspect.getsource`` still finds it, as python3 keeps a file's lines."""
    for filename in list(cells):
        kept = _kept_cells.get(id(filename))
        if kept is None or kept[0] is not filename or kept[1] is not cells:
            del cells[filename]


# (stdout, stderr, stdin) of every run, put back if user code replaced them; None when the streams
# are the process's own (``install``'s ``process_streams``: code replaces them as in python3)
_streams = None
# The streams and their ``buffer``s, whose attributes a run set are dropped (``restore_streams``);
# their classes, made immutable by the engine as python3's (``type(sys.stdout).write = ...`` raises).
_stream_objects = ()
_stream_classes = ()
_process_streams = False  # install's ``process_streams``
# The contexts whose code reconfigured ``sys.stdout`` or ``sys.stderr`` (``KernelStream.reconfigure``):
# what it set is theirs, the other contexts keep the streams' defaults. While the set is not empty,
# the engine calls ``apply_stream_settings`` as each run begins, a deleted context's settings go
# with it (``forget_stream_settings``), and the text writes of threads go through
# ``KernelStream._encoded_write``, which writes with the settings of the thread's context.
stream_contexts = set()
# The contexts with ``sys.stdin`` settings of their own (its ``reconfigure``, and whether their
# reads left python3's stream holding decoded text): read as the code reads, gone with the context.
input_contexts = set()
_NOBODY = object()  # no context: the streams' defaults
_applied_stream_context = _NOBODY  # whose settings the streams use now (``apply_stream_settings``)


def _thread_excepthook(args):
    """``threading.__excepthook__`` (``_thread._excepthook``) printing with the port: nothing for
    ``SystemExit`` itself, else the thread's name and the exception on ``sys.stderr`` (or the
    thread's ``_stderr`` when there is none), then a flush."""
    if args.exc_type is SystemExit:
        return
    if isinstance(args.exc_value, ProcessExit):
        _strip_engine_frames(args.exc_value)  # ``os._exit``'s own frame
    file = sys.stderr
    if file is None:
        file = getattr(args.thread, "_stderr", None) if args.thread is not None else None
        if file is None:
            return
    file.write(pykernel_traceback.format_thread_exception(args))
    file.flush()


_cpython_excepthook = sys.__excepthook__


def _excepthook(exc_type, value, tb):
    """``sys.__excepthook__`` (``PyErr_Display``) printing with the port on ``sys.stderr``, then a
    flush: code that calls the hook itself (``sys.excepthook(*sys.exc_info())``) gets a cell's
    source lines. A value that is not an exception, or no ``sys.stderr``, is CPython's case."""
    file = sys.stderr
    if not _is_instance(value, BaseException) or file is None:
        return _cpython_excepthook(exc_type, value, tb)
    if _traceback_of(value) is None and _is_instance(tb, types.TracebackType):
        _set_traceback(value, tb)  # as PyErr_Display: the traceback given when the exception has none
    file.write(pykernel_traceback.format_exception(value))
    try:
        file.flush()
    except Exception:  # noqa: BLE001,S110 -- PyErr_Display ignores a failed flush
        pass


def _unraisable_args_type():
    """``UnraisableHookArgs``, which ``sys`` does not name: the type of what CPython hands the hook."""
    handed = []
    hook = sys.unraisablehook
    sys.unraisablehook = handed.append
    try:
        class Probe:
            def __del__(self):
                raise Exception

        Probe()
    finally:
        sys.unraisablehook = hook
    return type(handed[0])


_UnraisableHookArgs = _unraisable_args_type()
_cpython_unraisable_hook = sys.__unraisablehook__  # CPython's printer, before ``install`` sets the port's


def _unraisable_hook(unraisable):
    """``sys.__unraisablehook__`` printing with the port, on ``sys.stderr`` (nothing when there is
    none), then a flush whose failure is ignored. Anything but CPython's ``UnraisableHookArgs``
    raises python3's ``TypeError``."""
    if type(unraisable) is not _UnraisableHookArgs:
        raise TypeError("sys.unraisablehook argument type must be UnraisableHookArgs")
    file = sys.stderr
    if file is None:
        return
    file.write(pykernel_traceback.format_unraisable(unraisable))
    try:
        file.flush()
    except Exception:  # noqa: BLE001,S110 -- CPython ignores a failed flush here
        pass


def _patch_inspect(inspect):
    """``inspect.getfile`` (and so ``getsource``, ``findsource``, ``doctest``'s line numbers) of a
    class defined in a cell: python3.11 looks for ``__main__.__file__``, which a context's module
    does not have (as ``python3 -c``'s), and raised "source code not available" where
    ``python3 file.py`` shows the class."""
    original = inspect.getfile
    if getattr(original, "__wrapped__", None) is not None:
        return

    def getfile(object):
        try:
            return original(object)
        except OSError:
            if not isinstance(object, type) or getattr(object, "__module__", None) != "__main__":
                raise
            filename = _cell_of_class(object, inspect)
            if filename is None:
                raise
            return filename

    getfile.__wrapped__ = original
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(getfile, name, getattr(original, name))
    inspect.getfile = getfile


def _cell_of_class(cls, inspect):
    """The ``<cell-N>`` that defined a class: that of one of its methods' code, else the latest
    cell of the running context whose source defines a class of that qualified name."""
    for value in vars(cls).values():
        for candidate in (value, getattr(value, "__func__", None), getattr(value, "fget", None)):
            filename = getattr(getattr(candidate, "__code__", None), "co_filename", None)
            if type(filename) is str and filename.startswith("<cell-") and filename in linecache.cache:
                return filename
    for filename in reversed(list(_current_cells)):
        try:
            tree = ast.parse("".join(linecache.getlines(filename)))
            inspect._ClassFinder(cls.__qualname__).visit(tree)
        except inspect.ClassFoundException:
            return filename
        except (SyntaxError, ValueError, AttributeError):
            continue
    return None


class _PatchOnImport:
    """Patches modules of the standard library as code imports them (``patches``: name ->
    patchers, applied in order): loading them at start would cost every server milliseconds.
    They are patched again each time they are loaded anew (``importlib.reload``, an import after
    ``del sys.modules[name]``), which would give the code the unpatched functions back. The C
    modules the engine guards (``posix``, ``_signal``, ``resource``: ``kept``) are never made
    anew: an import after ``del sys.modules[name]`` gives the guarded module back, as their
    ``importlib.reload`` does (a new ``_signal`` would also forget every Python handler, the
    engine's stop signal's too). Only those names are looked at; the import itself is Python's."""

    patches = {}
    kept = {}

    @classmethod
    def install(cls, name, patch):
        """Patches ``name`` now if it is loaded, and whenever it is loaded (again)."""
        cls.patches.setdefault(name, []).append(patch)
        if cls not in sys.meta_path:
            sys.meta_path.insert(0, cls)
        if name in sys.modules:
            patch(sys.modules[name])

    @classmethod
    def keep(cls, module):
        """Gives ``module`` back to every later import of its name."""
        cls.kept[module.__name__] = module
        if cls not in sys.meta_path:
            sys.meta_path.insert(0, cls)

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        kept = cls.kept.get(name)
        patches = cls.patches.get(name)
        if kept is None and patches is None:
            return None
        if kept is not None:
            spec = importlib.machinery.ModuleSpec(name, _KeptModule(kept), origin=kept.__spec__.origin)
            return spec
        for finder in sys.meta_path:
            if finder is not cls and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        if hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patches)
        return spec


class _PatchingLoader:
    """A module's loader that patches the module once it has run (``_PatchOnImport``); the
    module's ``__loader__`` and ``__spec__.loader`` are its own loader again afterwards."""

    def __init__(self, loader, patches):
        self._loader, self._patches = loader, patches

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        for patch in self._patches:
            patch(module)


class _KeptModule:
    """The loader of a module ``_PatchOnImport`` keeps: the module itself, as it was."""

    def __init__(self, module):
        self._module, self._spec, self._loader = module, module.__spec__, module.__loader__

    def create_module(self, spec):
        return self._module

    def exec_module(self, module):
        module.__spec__, module.__loader__ = self._spec, self._loader


def _patch_subprocess(subprocess):
    """``Popen._execute_child`` that kills the child it started when a stop (an interrupt, a
    timeout) or another exception ends it after the fork: raised as ``_fork_exec`` returns (before
    ``Popen`` knows the pid) or while it waits for the child's ``exec``, it makes ``Popen()`` raise
    with no object to kill the child through (``subprocess.run`` kills only a child it got), and
    the child would live on and write into later runs. (A child whose ``exec`` failed was reaped
    already.) The calling thread's children are read from ``/proc`` before the call: a few µs per
    process started."""
    execute_child = subprocess.Popen._execute_child

    def _execute_child(self, *args, **kwargs):
        before = _children_of_this_thread()
        try:
            return execute_child(self, *args, **kwargs)
        except BaseException:
            for pid in _children_of_this_thread() - before:
                try:
                    os.kill(pid, signal.SIGKILL)
                    _, status = os.waitpid(pid, 0)
                except OSError:
                    continue
                if pid == self.pid:
                    self._handle_exitstatus(status)
            raise

    _execute_child.__wrapped__ = execute_child
    subprocess.Popen._execute_child = _posing_as(execute_child, _execute_child)


def _children_of_this_thread():
    """The pids of the processes the calling thread started that live (or wait to be reaped)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/children", "rb") as children:
            return set(map(int, children.read().split()))
    except OSError:
        return set()


def _text_stream_class():
    """The class of one standard stream: ``KernelStream`` named as python3's
    ``_io.TextIOWrapper``. Its native ``write`` and ``flush`` (methods of the stream, as
    ``TextIOWrapper``'s are) are set by the engine, which also makes ``_io.TextIOWrapper`` the
    type name CPython's messages print. On the class, not the instance, so code that sets
    ``sys.stdout.write`` and later deletes it gets it back, as with ``python3``'s streams."""
    return type("TextIOWrapper", (KernelStream,), {"__module__": "_io", "__qualname__": "TextIOWrapper"})


def _stdin_class():
    """The class of ``sys.stdin``: ``KernelInput`` named as python3's ``_io.TextIOWrapper`` (the
    engine makes that the type name CPython's messages print)."""
    return type("TextIOWrapper", (KernelInput,), {"__module__": "_io", "__qualname__": "TextIOWrapper"})


def _with_write(cls, write, flush):
    """A subclass of ``cls`` whose ``write`` and ``flush`` are the native functions given (a
    flush hands the run's output out at once): the streams' ``buffer``. On the class, not the
    instance, so code that sets ``sys.stdout.buffer.write`` and later deletes it gets it back."""
    return type(cls.__name__, (cls,), {"write": write, "flush": flush, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})


def install(stdout_write_bytes, stderr_write_bytes, flush,
            fd_capture, on_stop_signal, stop_signal, guard_process_exit, process_streams):
    """Points the standard streams at the engine (whose native text ``write`` and ``flush`` it
    sets afterwards, see ``_text_stream_class``), installs the stop-signal handler (the native
    ``on_stop_signal``, which raises the pending stop) and, with ``guard_process_exit``, keeps
    ``os._exit``/``os.abort`` from ending the shared process. With ``process_streams``,
    ``sys.stdin``, ``sys.stdout`` and ``sys.stderr`` stay the ones CPython made on descriptors 0, 1
    and 2, as python3's (buffered, encoded and closed as there)."""
    out_fd, err_fd, in_fd = (1, 2, 0) if fd_capture else (None, None, None)
    global _process_streams
    _process_streams = process_streams
    if not process_streams:
        sys.stdout = sys.__stdout__ = _text_stream_class()("<stdout>", out_fd, stdout_write_bytes, flush)
        sys.stderr = sys.__stderr__ = _text_stream_class()("<stderr>", err_fd, stderr_write_bytes, flush)
        sys.stdin = sys.__stdin__ = _stdin_class()(in_fd)
        global _streams, _stream_objects, _stream_classes
        _streams = (sys.stdout, sys.stderr, sys.stdin)
        _stream_objects = _streams + tuple(stream.buffer for stream in _streams)
        _stream_classes = tuple(type(stream) for stream in _stream_objects) + (
            KernelStream, KernelBinaryStream, KernelInput, _KernelInputBytes)
        input.__doc__ = _original_input.__doc__
        input.__module__ = "builtins"
        builtins.input = input
        _install_getpass()
        # CPython's own printers for these read a frame's source line from its file, so a cell's
        # frames would show none: the same text from the port, which reads the cells.
        _PatchOnImport.install("threading", _patch_threading)  # its excepthook, now the streams are set
        sys.unraisablehook = sys.__unraisablehook__ = _unraisable_hook
        sys.excepthook = sys.__excepthook__ = _excepthook
        _PatchOnImport.install("inspect", _patch_inspect)
    linecache.cache = _CellCache(linecache.cache)
    warnings._showwarnmsg = _marking_cell_level_warnings(warnings._showwarnmsg)
    pykernel_traceback.registered_source = _cell_source
    if fd_capture:
        _guard(posix, "write", _announcing_write)
        _PatchOnImport.install("subprocess", _patch_subprocess_pipes)
        _guard(posix, "system", _system_with_context_pipes)
        _guard(posix, "posix_spawn", _spawn_with_context_pipes)
        _guard(posix, "posix_spawnp", _spawn_with_context_pipes)
        os.register_at_fork(before=_open_fork_pipes, after_in_parent=_close_fork_pipes, after_in_child=_use_fork_pipes)
    if "" not in sys.path:
        sys.path.insert(0, "")  # like a Jupyter kernel: modules in the context's cwd are importable

    global _stop_signal, _interpreter_thread
    _stop_signal, _interpreter_thread = stop_signal, _thread.get_ident()
    signal.signal(stop_signal, on_stop_signal)
    _guard(_signal, "signal", _routing_signal)
    _guard(_signal, "getsignal", _keeping_stop_signal)
    _guard(_signal, "pthread_sigmask", _keeping_stop_signal_deliverable)
    _guard(_signal, "siginterrupt", _keeping_stop_signal_interrupting)
    if guard_process_exit:
        global _guards_host_signals
        _guards_host_signals = True
        _PatchOnImport.install("subprocess", _patch_subprocess)
        _guard(posix, "_exit", _guarded_exit)
        sys.addaudithook = _recording_audit_hook_owner(sys.addaudithook)
        _guard(posix, "abort", _guarded_abort)
        _guard(posix, "kill", _guarded_kill)
        _guard(posix, "setsid", lambda setsid: _keeping_the_session(setsid, lambda: True))
        _guard(posix, "setpgrp", lambda setpgrp: _keeping_the_session(setpgrp, lambda: True))
        _guard(posix, "setpgid", lambda setpgid: _keeping_the_session(
            setpgid, lambda pid, pgrp: operator.index(pid) in (0, os.getpid())))
        _guard(posix, "killpg", _guarded_killpg)
        _guard(_signal, "raise_signal", _guarded_raise_signal)
        _guard(_signal, "pthread_kill", _guarded_pthread_kill)
        _guard(_signal, "pidfd_send_signal", _guarded_pidfd_send_signal)
        _guard(resource, "setrlimit", _keeping_shared_limits_setrlimit)
        _guard(resource, "prlimit", _keeping_shared_limits_prlimit)
        _guard(posix, "close", _sparing_engine_descriptors_close)
        _guard(posix, "closerange", _sparing_engine_descriptors_closerange)
        _guard(posix, "dup2", _sparing_engine_descriptors_dup2)
        _guard(posix, "set_blocking", _sparing_engine_descriptors)
        _PatchOnImport.install("os", _patch_os)
        for name in ("read", "write", "readv", "writev", "pread", "pwrite", "ftruncate", "fsync"):
            _guard(posix, name, _sparing_engine_descriptors)
        _guard(posix, "sendfile", _sparing_engine_descriptors_sendfile)
        _guard(_signal, "alarm", lambda alarm: _keeping_timer_signals_handled(
            alarm, lambda seconds: (signal.SIGALRM, seconds)))
        _guard(_signal, "setitimer", lambda setitimer: _keeping_timer_signals_handled(
            setitimer, lambda which, seconds, interval=0.0: (_TIMER_SIGNALS.get(which), seconds)))
        _guard(_signal, "getitimer", _keeping_timers_of_contexts)
        for module in (posix, _signal, resource):
            _PatchOnImport.keep(module)


# The modules whose functions are the C modules' own: ``os``'s are ``posix``'s, ``signal``'s are
# ``_signal``'s but for the few it wraps in Python (which call ``_signal``'s at each call).
_COPIES = {"posix": os, "_signal": signal}


def _guard(module, name, guard):
    """Puts ``guard(function)`` in place of the function ``name`` of the C module ``module``
    (``posix``, ``_signal``, ``resource``) and of its copy in ``os`` or ``signal``: the guards
    live where ``os`` and ``signal`` take their functions from, so ``importlib.reload(os)``, an
    import of ``os`` after ``del sys.modules['os']``, ``from posix import _exit`` and the
    Python wrappers of ``signal`` (``signal.signal`` calls ``_signal.signal``) get them too."""
    original = getattr(module, name)
    guarded = guard(original)
    setattr(module, name, guarded)
    copy = _COPIES.get(module.__name__)
    if copy is not None and getattr(copy, name, None) is original:
        setattr(copy, name, guarded)


def _patch_os(os):
    """``os.fdopen`` (``os``'s own, not ``posix``'s) spares the engine's descriptors; applied
    again when ``os`` is loaded anew."""
    os.fdopen = _sparing_engine_descriptors(os.fdopen)


# The engine's own descriptors (protocol, capture, event loops), by number: what each was (device,
# inode) when noted, so that a number the engine closed and the code's file got since is the code's.
_engine_descriptors = {}
# engine_keeps(fd): whether fd is one the engine opened since (a command's pipes, a PTY master, a
# process context's channel), kept by number and identity as it opens them (the engine's native,
# set by install's caller).
engine_keeps = None


# Limits that, lowered for the process every namespace context shares, would end or starve the
# server: SIGXCPU or SIGXFSZ ends the process, allocations and threads fail, descriptors run out,
# the stop signal (a real-time one, queued) can no longer be sent, so no timeout or interrupt
# reaches a blocking call. (RLIMIT_MEMLOCK, RLIMIT_RTTIME, RLIMIT_RTPRIO, RLIMIT_NICE,
# RLIMIT_MSGQUEUE, RLIMIT_CORE and RLIMIT_LOCKS concern nothing the server uses.)
_SHARED_LIMITS = frozenset(getattr(resource, name) for name in (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK",
    "RLIMIT_SIGPENDING") if hasattr(resource, name))


def _refuse_lowering_shared_limit(which, limits, call):
    """Raises ``PermissionError`` when ``limits`` would lower a limit of ``_SHARED_LIMITS`` for
    the process every namespace context shares (raising one, or other resources, is left to the
    real call, as are its own errors)."""
    if not _process_shared or _in_forked_child():
        return
    try:
        number = operator.index(which)
        new = tuple(operator.index(limit) for limit in limits)
        current = resource.getrlimit(number)
    except (TypeError, ValueError, OSError):
        return
    if number not in _SHARED_LIMITS or len(new) != 2:
        return
    infinity = resource.RLIM_INFINITY
    if any(limit != infinity and (now == infinity or limit < now) for limit, now in zip(new, current)):
        raise PermissionError(errno.EPERM, f"{call} would lower a limit of the process that runs every namespace "
                              "context (the server); set it in a process context (isolation \"process\") or in "
                              "a subprocess (preexec_fn)")


def _keeping_shared_limits_setrlimit(setrlimit):
    """``resource.setrlimit`` that does not lower, for the shared process, a limit that would end
    or starve the server (``RLIMIT_CPU`` ended it with SIGXCPU)."""

    def setrlimit_(which, limits, /):
        _refuse_lowering_shared_limit(which, limits, "resource.setrlimit")
        return setrlimit(which, limits)

    return _posing_as(setrlimit, setrlimit_)


def _keeping_shared_limits_prlimit(prlimit):
    """``resource.prlimit`` that does the same for this process (pid 0 or its own)."""

    def prlimit_(pid, which, limits=None, /):
        if limits is None:
            return prlimit(pid, which)
        if pid in (0, os.getpid()):
            _refuse_lowering_shared_limit(which, limits, "resource.prlimit")
        return prlimit(pid, which, limits)

    return _posing_as(prlimit, prlimit_)


def note_engine_descriptors():
    """Takes the descriptors open now (from 3 on) as the engine's: called before any code runs,
    at start-up and again once the server has set everything up."""
    global _engine_descriptors
    _engine_descriptors = _open_descriptors_from(3)


def _open_descriptors_from(lowest):
    """The descriptors open in this process from ``lowest`` on, with what each is (device, inode),
    from ``/proc/self/fd`` (whose own descriptor is closed again by then)."""
    open_now = {}
    for name in os.listdir("/proc/self/fd"):
        number = int(name)
        if number >= lowest:
            try:
                status = os.fstat(number)
            except OSError:
                continue
            open_now[number] = (status.st_dev, status.st_ino)
    return open_now


def _spares(fd):
    """Whether ``fd`` is the engine's, kept from the code of the process every context shares
    (closing it there would end the server's protocol, its output capture or its event loops):
    the descriptor noted under that number, still open, or one the engine keeps since."""
    if _in_forked_child():
        return False
    noted = _engine_descriptors.get(fd)
    if noted is not None:
        try:
            status = os.fstat(fd)
        except OSError:
            return False
        if (status.st_dev, status.st_ino) == noted:
            return True
    return engine_keeps is not None and engine_keeps(fd)


def refuse_engine_descriptor_path(path):
    """Raises ``OSError(EBADF)`` when ``path`` (what ``open``, ``os.open`` or ``io.FileIO`` was
    given) names an engine's descriptor through this process's descriptor directory
    (``/proc/self/fd/N``, ``/dev/fd/N``, ``/proc/thread-self/fd/N``, ``/proc/PID/fd/N``,
    ``/proc/PID/task/TID/fd/N``, or ``N`` relative to a working directory that is one): opening
    it anew wrote forged messages into the server's protocol output, or read requests from its
    input. Called by the engine's audit hook (``open``) only for a path whose last component is a
    number, absolute under ``/proc`` or ``/dev`` or relative; its directory is resolved
    (symbolic links, ``..``), so ``/proc/self/../self/fd/N`` is one too."""
    if _in_forked_child():
        return
    try:
        directory, name = os.path.split(os.fsdecode(path))
        if not (name.isascii() and name.isdigit()):
            return
        fd = int(name)
        if fd <= 2:  # the code's own
            return
        parts = os.path.realpath(directory or ".").split("/")
    except (TypeError, ValueError, OSError):
        return
    # "/proc/PID/fd" or "/proc/PID/task/TID/fd": PID and TID this process's (a thread's id names
    # the process under /proc too).
    if not (len(parts) in (4, 6) and parts[0] == "" and parts[1] == "proc" and parts[-1] == "fd"
            and (len(parts) == 4 or parts[3] == "task")):
        return
    if not all(_is_own_task(number) for number in parts[2:-1:2]):
        return
    if _spares(fd):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF), path)


def _is_own_task(number):
    """Whether ``number`` (the text of a /proc entry) is the id of this process or of one of its threads."""
    if not (number.isascii() and number.isdigit()):
        return False
    return int(number) == os.getpid() or os.path.isdir(f"/proc/self/task/{number}")


def _sparing_engine_descriptors_close(posix_close):
    """``os.close`` for which the engine's descriptors are not open (``EBADF``, as python3 says
    of a descriptor it never opened)."""

    def close(fd):
        if _spares(operator.index(fd)):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return posix_close(fd)

    return _posing_as(posix_close, close)


def _sparing_engine_descriptors_closerange(posix_closerange):
    """``os.closerange`` that closes every descriptor of the range but the engine's
    (``os.closerange(3, 1024)``, as daemons and sandboxes do, left the server unable to answer)."""

    def closerange(fd_low, fd_high, /):
        low, high = operator.index(fd_low), operator.index(fd_high)
        if _in_forked_child():
            return posix_closerange(low, high)
        for spared in sorted(fd for fd in _open_descriptors_from(max(low, 0)) if fd < high and _spares(fd)):
            posix_closerange(low, spared)
            low = spared + 1
        return posix_closerange(low, high)

    return _posing_as(posix_closerange, closerange)


def _sparing_engine_descriptors_dup2(posix_dup2):
    """``os.dup2`` that does not replace an engine's descriptor (``EBADF``)."""

    def dup2(fd, fd2, inheritable=True):
        if _spares(operator.index(fd2)):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return posix_dup2(fd, fd2, inheritable)

    return _posing_as(posix_dup2, dup2)


def _sparing_engine_descriptors(call):
    """``call`` (``os.set_blocking``, ``os.fdopen``, ``os.read``, ``os.write``...), whose first
    argument is a descriptor, for which the engine's descriptors are not open (``EBADF``): a
    server's protocol made non-blocking read as ended, a file object made on it closed it, and
    a write to a number the code's file had before the engine got it went into the protocol.
    (Descriptors 0, 1 and 2 are never the engine's: no look-up for them.)"""

    def call_(fd, *arguments, **keywords):
        if isinstance(fd, int) and fd > 2 and _spares(fd):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return call(fd, *arguments, **keywords)

    return _posing_as(call, call_)


def _sparing_engine_descriptors_sendfile(sendfile):
    """``os.sendfile`` from or to an engine's descriptor: ``EBADF``, as ``_sparing_engine_descriptors``."""

    def sendfile_(out_fd, in_fd, *arguments, **keywords):
        for fd in (out_fd, in_fd):
            if isinstance(fd, int) and fd > 2 and _spares(fd):
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return sendfile(out_fd, in_fd, *arguments, **keywords)

    return _posing_as(sendfile, sendfile_)


# The signal each interval timer of signal.setitimer sends.
_TIMER_SIGNALS = {signal.ITIMER_REAL: signal.SIGALRM, signal.ITIMER_VIRTUAL: signal.SIGVTALRM,
                  signal.ITIMER_PROF: signal.SIGPROF}


def _refuse_default_for_armed_timer(signalnum, handler):
    """Raises ``PermissionError`` when ``signal.signal`` would put back the default action (which
    ends the process every namespace context shares) of the signal of an armed interval timer."""
    try:
        number = operator.index(signalnum)
    except TypeError:
        return
    for which, timer_signal in _TIMER_SIGNALS.items():
        if timer_signal == number and handler in (signal.SIG_DFL, None) and signal.getitimer(which)[0] > 0:
            raise PermissionError(
                errno.EPERM, f"the default action of {signal.Signals(number).name} would end the process that runs "
                "every namespace context (the server) when the armed timer fires; disarm it first")


def _keeping_timer_signals_handled(arm, timer):
    """``signal.alarm`` or ``signal.setitimer`` that, in the process every namespace context shares,
    does not arm a timer whose signal is at its default action, which ends the process (the
    server: a cell's ``signal.alarm(1)`` ended it by SIGALRM): ``PermissionError`` saying to set a
    handler first (``signal.signal``, then the timer calls it, as in python3) or to use a process
    context. ``timer(*arguments)`` gives the timer's signal and its delay."""

    def arm_(*arguments):
        if _process_shared and not _in_forked_child():
            try:
                number, seconds = timer(*arguments)
                at_default = number is not None and seconds > 0 and signal.getsignal(number) in (signal.SIG_DFL, None)
            except (TypeError, ValueError):
                at_default = False  # the real call raises as python3's
            if at_default:
                raise PermissionError(
                    errno.EPERM, f"signal.{arm.__name__} would end the process that runs every namespace context (the "
                    f"server) when {signal.Signals(number).name} comes at its default action; set a handler first "
                    "(signal.signal), or arm it in a process context (isolation \"process\")")
        if _contexts_have_own_signals():
            owner = thread_owner()
            if owner is not None and not _runs_now(owner):
                return _arm_saved_timer(owner, arm.__name__, arguments)
            result = arm(*arguments)
            if owner is not None:
                global _timers_of
                _timers_of = owner
                signal_contexts.add(owner)
            return result
        return arm(*arguments)

    return _posing_as(arm, arm_)


def _arm_saved_timer(context, name, arguments):
    """``signal.alarm`` or ``setitimer`` from a thread of a context whose code does not run now:
    on the timers saved for its next run (``resume_signals``), as they would be on a process of
    its own that does not run."""
    timers = _saved_timers.setdefault(context, {})
    if name == "alarm":
        (seconds,) = arguments
        which, delay, interval = signal.ITIMER_REAL, float(operator.index(seconds)), 0.0
    else:
        which, delay, interval = (list(arguments) + [0.0])[:3]
        which, delay, interval = operator.index(which), float(delay), float(interval)
        if which not in _TIMER_SIGNALS:
            raise signal.ItimerError(errno.EINVAL, os.strerror(errno.EINVAL))
    previous = timers.pop(which, (0.0, 0.0))
    if delay > 0:
        timers[which] = (delay, interval)
    if not timers:
        del _saved_timers[context]
    _update_signal_contexts()
    if name == "alarm":  # whole seconds, rounded as glibc's alarm rounds them
        left = int(previous[0]) + (previous[0] % 1 >= 0.5)
        return left or (1 if previous[0] > 0 else 0)
    return previous


def _keeping_timers_of_contexts(getitimer):
    """``signal.getitimer`` from a thread of a context whose code does not run now: its saved timer."""

    def getitimer_(which, /):
        if _contexts_have_own_signals():
            owner = thread_owner()
            if owner is not None and not _runs_now(owner) and operator.index(which) in _TIMER_SIGNALS:
                return _saved_timers.get(owner, {}).get(operator.index(which), (0.0, 0.0))
        return getitimer(which)

    return _posing_as(getitimer, getitimer_)


_forked_by_code = False  # True in a process forked by user code: os._exit and os.abort end it
_guards_host_signals = False  # True when the process runs contexts for a host (not `pykernel run`)
# False in a process context's worker (a prepared engine's child), whose process is its context's
# own: a signal the code sends itself reaches it (and crashes that context alone).
_process_shared = True
_restore_signals_after_fork = None  # the engine's natives, see install_fork_hooks
_forked_child_begins = None
_end_process = None
_forked_child_setup_pending = None
# Signals whose Python handler a child keeps (the bit `1 << signal` of forked_child_begins' int).
_SIGNALS = tuple(number for number in signal.valid_signals() if number < 63)


def install_fork_hooks(block_signals, restore_signals, forked_child_begins, end_process, forked_child_setup_pending):
    """Registers what happens around a fork made by user code (``os.fork``, ``multiprocessing`` and
    ``concurrent.futures`` workers, ``subprocess`` with ``preexec_fn``): the engine's natives block
    signals on the forking thread before it and restore them after it in the parent; the child
    is set up by ``_after_fork_in_child``. A child forked without these hooks (libc's ``fork()``
    called through ``ctypes``) is set up when its code next calls a guarded function, or returns
    to the engine (``_in_forked_child``)."""
    global _restore_signals_after_fork, _forked_child_begins, _end_process, _forked_child_setup_pending
    _restore_signals_after_fork, _forked_child_begins, _end_process = restore_signals, forked_child_begins, end_process
    _forked_child_setup_pending = forked_child_setup_pending
    os.register_at_fork(before=block_signals, after_in_parent=restore_signals, after_in_child=_after_fork_in_child)


def _after_fork_in_child():
    """In a child forked by user code: sets it up as one (``_begin_forked_child``). The engine's
    own forks (a prepared engine's children, made from Swift with no Python frame running) only
    get their signals back."""
    if sys._getframe().f_back is None:
        _restore_signals_after_fork()
        return
    _begin_forked_child()


def _begin_forked_child():
    """Marks a child forked by user code (its ``os._exit`` exits; what returns to the engine ends
    it, see ``end_forked_child``), gives its signals python3's handlers (the host's SIGTERM
    handling would make ``Pool.terminate()`` wait forever), closes the engine's descriptors and
    points its standard streams at descriptors 1 and 2."""
    global _forked_by_code
    _materialize_signals_in_child()
    _forked_by_code = True
    getsignal, handled = _signal.getsignal, 0  # signal.getsignal's enum conversion costs ~50 µs here
    for number in _SIGNALS:
        if callable(getsignal(number)):
            handled |= 1 << number
    _forked_child_begins(handled)
    _close_engine_descriptors_in_child()
    _write_to_descriptors_in_child()


def _in_forked_child():
    """Whether this process is a child forked by user code. A child forked outside Python's
    at-fork hooks (libc's ``fork()`` through ``ctypes``), which the engine marked natively as it
    began, is set up here first (``_begin_forked_child``): the guards that ask (``os._exit``,
    ``os.setsid``, ...) then let it do what python3's child does."""
    if not _forked_by_code and _forked_child_setup_pending is not None and _forked_child_setup_pending():
        _begin_forked_child()
    return _forked_by_code


def _close_engine_descriptors_in_child():
    """In a child forked by user code: closes the descriptors the engine noted at start (its
    protocol, the output pipes' read ends, event loops), as python3's child has none of a
    server's; ``forked_child_begins`` closed those it opened since."""
    for fd, noted in _engine_descriptors.items():
        try:
            status = os.fstat(fd)
            if (status.st_dev, status.st_ino) == noted:
                _os_close(fd)
        except OSError:
            pass
    # Signal descriptors are the engine's alone (Python makes none): Dispatch opens its own lazily.
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[signalfd]":
                _os_close(int(name))
        except OSError:
            pass


def end_forked_child(exc, flushes_first):
    """Ends a child forked by user code whose code returned to the engine (a cell that forked and
    did not exit in the child) as python3's child ends at the end of its program: the streams
    flushed when ``flushes_first`` (python3's ``flush_io`` after a file's code, not a string's),
    an uncaught exception reported (``sys.excepthook``), ``SystemExit`` giving the status, then the
    end of the program (threads, ``atexit``, streams flushed) and the exit. Never returns: the
    engine's work that follows belongs to the process that forked."""
    status = 0
    try:
        _in_forked_child()  # one forked outside Python's hooks is set up first
        if flushes_first:
            flush_io()
        if _is_instance(exc, SystemExit):
            status = _handle_system_exit(exc)
        elif exc is not None:
            _strip_engine_frames(exc)
            if sys.excepthook is sys.__excepthook__ or not _call_excepthook(exc):
                print(pykernel_traceback.format_exception(exc), end="", file=sys.stderr)
            status = 1
        end_program()
        if _is_instance(exc, KeyboardInterrupt):  # python3 then ends by SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        _end_process(status)


def _write_to_descriptors_in_child():
    """After ``os.fork()`` (``multiprocessing`` workers too): the child has no engine thread to
    deliver what its ``KernelStream`` holds, so its standard streams become files on descriptors
    1 and 2 (the capture pipes the engine reads, else the process's own, as python3's child
    writes), buffered as python3's are on a pipe (stdout by blocks, stderr by lines), or
    unbuffered (a raw file, ``write_through``) when ``PYTHONUNBUFFERED`` is set and not empty in
    ``os.environ``, as python3 started with it makes them: what the child printed before its
    ``os._exit`` is lost or not as in python3. Their encoding, error handler and newline are what
    the forking code's context set (``reconfigure``). A stream the code replaced is left alone."""
    unbuffered = bool(_environ.get("PYTHONUNBUFFERED"))
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if not isinstance(stream, KernelStream):
            continue
        # The settings of the forking code's context (the thread's: ``threading`` made it the main one).
        owner = getattr(threading.current_thread(), "_pykernel_context", None) or _current_context
        settings = stream._settings if owner is None else stream._contexts.get(owner, stream._default)
        binary = open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False)
        # python3's: stderr line-buffered, unless unbuffered (write-through, as stdout then).
        replacement = io.TextIOWrapper(binary, settings.encoding, settings.errors, settings.newline,
                                       line_buffering=settings.line_buffering and not unbuffered,
                                       write_through=unbuffered or settings.write_through)
        setattr(sys, name, replacement)
        setattr(sys, f"__{name}__", replacement)


_current_context = None  # the ID of the context whose run is in progress (or ran last)
_original_thread_start = None  # threading.Thread.start's own (``_patch_threading``)
_code_started_threads = False  # whether a thread was started (``join_threads``)
# The engine's (set by install's caller): as_the_code(function, *args) calls it with the code's
# trace and profile functions on, as_the_engine(function, *args) with them off.
as_the_code = as_the_engine = None


def _start_thread_recording_owner(self):
    """``threading.Thread.start`` that remembers which context started the thread, so what the
    thread prints goes to that context and never into another context's run (and what the
    processes it starts write: see ``_context_pipes``)."""
    self._pykernel_context = thread_owner()
    global _code_started_threads
    _code_started_threads = True
    return _original_thread_start(self)


def thread_owner():
    """The context that started the calling thread (the running context for the main thread)."""
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return _current_context
    return getattr(thread, "_pykernel_context", None)


def _patch_threading(threading):
    """``threading.Thread.start`` records its thread's context (``_start_thread_recording_owner``)
    and, once ``install`` set the engine's streams, uncaught exceptions of threads print with
    their cells' lines; again when ``threading`` is loaded anew (a new ``Thread`` class: the
    threads its ``importlib.reload`` starts printed into the runs of other contexts)."""
    global _original_thread_start
    if threading.Thread.start is not _start_thread_recording_owner:
        _original_thread_start = threading.Thread.start
        threading.Thread.start = _start_thread_recording_owner
    if _streams is not None:
        threading.excepthook = threading.__excepthook__ = _thread_excepthook


_patch_threading(threading)


def install_context_settings(change_directory, set_umask):
    """Makes ``os.chdir``, ``os.fchdir`` and ``os.umask`` called by a thread other than the
    interpreter thread go through the engine's ``change_directory(call, argument)`` and
    ``set_umask(call, mask)``: the new directory or umask is that of the context that started the
    thread, and another context's run in progress keeps its own (every thread shares the
    process's). On the interpreter thread, and in a child the code forked, they are the originals
    (the engine records what a run changed at its end). ``os.setuid`` and the other calls that
    change the process's users or groups are refused in namespace contexts
    (``_keeping_the_identity``). In ``posix``, as the other guards (``_guard``)."""

    def on_interpreter_thread():
        return _in_forked_child() or _thread.get_ident() == _interpreter_thread

    def charging_chdir(posix_chdir):
        def chdir(path):
            return posix_chdir(path) if on_interpreter_thread() else change_directory(posix_chdir, path)
        return _posing_as(posix_chdir, chdir)

    def charging_fchdir(posix_fchdir):
        def fchdir(fd):
            return posix_fchdir(fd) if on_interpreter_thread() else change_directory(posix_fchdir, fd)
        return _posing_as(posix_fchdir, fchdir)

    def charging_umask(posix_umask):
        def umask(mask, /):
            return posix_umask(mask) if on_interpreter_thread() else set_umask(posix_umask, mask)
        return _posing_as(posix_umask, umask)

    original_chdir = posix.chdir
    _guard(posix, "chdir", charging_chdir)
    _guard(posix, "fchdir", charging_fchdir)
    _guard(posix, "umask", charging_umask)
    if original_chdir in os.supports_fd:
        os.supports_fd.add(posix.chdir)
    for name in _IDENTITY_CALLS:
        if hasattr(posix, name):
            _guard(posix, name, _keeping_the_identity)


# Processes started by a context's threads. The engine's audit hook gives a process the
# interpreter thread starts its context's pipes on descriptors 1 and 2 for the run (they are the
# process's own then); a thread's run may be long over, and another context's run in progress,
# so its processes get their context's pipes through the spawn itself, in the child only.
open_context_pipe = None  # the engine's: open_context_pipe(fd) -> a write end, or None (set by install's caller)
_os_close, _os_dup2 = os.close, os.dup2  # the real ones (the write ends are not the engine's)
_spawning = threading.local()  # .active: a spawn that passes the pipes itself (no fork hook then)


def _context_pipes(fds):
    """{fd: write end}: for a process the calling thread is about to start, a new pipe of the
    context whose code started the thread for each of ``fds`` (1, 2) that the engine holds (one
    the code redirected stays the process's). Empty on the interpreter thread, for threads no
    context started, and in a child the code forked (its 1 and 2 are its context's pipes already,
    and the engine's locks may have been held by threads the fork left behind)."""
    if open_context_pipe is None or _in_forked_child() or _thread.get_ident() == _interpreter_thread:
        return {}
    pipes = {}
    try:
        for fd in fds:
            end = open_context_pipe(fd)
            if end is not None:
                pipes[fd] = end
    except BaseException:
        _close_pipes(pipes)
        raise
    return pipes


def _close_pipes(pipes):
    """Closes this process's copies of the write ends (the child has its own)."""
    for end in pipes.values():
        try:
            _os_close(end)
        except OSError:
            pass


def _patch_subprocess_pipes(subprocess):
    """``subprocess.Popen`` that gives a process a context's thread starts that context's pipes
    for the streams it does not redirect (its ``c2pwrite``/``errwrite`` are -1 then). Installed
    with descriptor capture (``install``), applied as ``subprocess`` is imported (again when it
    is loaded anew): no import of the engine's own in the code's ``Thread.start``, where the
    code's import state (``sys.path``, ``sys.modules``, the recursion limit) could make it fail."""
    execute_child = subprocess.Popen._execute_child
    code = getattr(execute_child, "__wrapped__", execute_child).__code__
    names = code.co_varnames[1:code.co_argcount]  # after self
    positions = {1: names.index("c2pwrite"), 2: names.index("errwrite")}

    def _execute_child(self, *args, **kwargs):
        def given(fd):
            name = "c2pwrite" if fd == 1 else "errwrite"
            return args[positions[fd]] if positions[fd] < len(args) else kwargs.get(name, -1)

        pipes = _context_pipes([fd for fd in (1, 2) if given(fd) == -1])
        if not pipes:
            return execute_child(self, *args, **kwargs)
        handles = {fd: pipes.get(fd, given(fd)) for fd in (1, 2)}
        if given(1) == -1 and given(2) == 1 and 1 in pipes:
            handles[2] = pipes[1]  # stderr=STDOUT with stdout inherited: both into the stdout pipe
        args = list(args)
        for fd, end in handles.items():
            if positions[fd] < len(args):
                args[positions[fd]] = end
            else:
                kwargs["c2pwrite" if fd == 1 else "errwrite"] = end
        _spawning.active = True
        try:
            return execute_child(self, *args, **kwargs)
        finally:
            _spawning.active = False
            _close_pipes(pipes)

    subprocess.Popen._execute_child = _posing_as(execute_child, _execute_child)


_original_posix_spawn = os.posix_spawn  # os.system's below spawns without the wrapper's check


def _system_with_context_pipes(system):
    """``os.system`` that, on a context's thread, runs the shell as C's ``system()`` does
    (``/bin/sh -c COMMAND``, the wait status returned) with that context's pipes."""

    def system_(command):
        pipes = _context_pipes((1, 2))
        if not pipes:
            return system(command)
        try:
            sys.audit("os.system", command)
            try:
                pid = _original_posix_spawn("/bin/sh", ["sh", "-c", command], _environ,
                                            file_actions=[(os.POSIX_SPAWN_DUP2, end, fd) for fd, end in pipes.items()])
            except OSError:
                return 127 << 8  # as system() when the shell cannot be run
        finally:
            _close_pipes(pipes)
        return os.waitpid(pid, 0)[1]

    return _posing_as(system, system_)


def _spawn_with_context_pipes(spawn):
    """``os.posix_spawn``/``posix_spawnp`` that, on a context's thread, first puts that
    context's pipes on 1 and 2 in the child (the caller's own file actions come after them)."""

    def spawn_(path, argv, env, /, *, file_actions=None, **options):
        pipes = _context_pipes((1, 2))
        if not pipes:
            return spawn(path, argv, env, file_actions=file_actions, **options)
        try:
            actions = [(os.POSIX_SPAWN_DUP2, end, fd) for fd, end in pipes.items()] + list(file_actions or ())
            return spawn(path, argv, env, file_actions=actions, **options)
        finally:
            _close_pipes(pipes)

    return _posing_as(spawn, spawn_)


_fork_pipes = None  # ({fd: write end}, {fd: what fd was}) of the fork in progress (the GIL is held throughout)


def _identity(fd):
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _open_fork_pipes():
    """Before ``os.fork()`` (``multiprocessing``, ``os.spawn*``, ``pty.fork``) on a context's
    thread: that context's pipes for the child. Not for the engine's own forks (no Python
    frame) nor within a spawn that passes them itself."""
    global _fork_pipes
    _fork_pipes = None
    if sys._getframe().f_back is None or getattr(_spawning, "active", False):
        return
    pipes = _context_pipes((1, 2))
    if pipes:
        _fork_pipes = (pipes, {fd: _identity(fd) for fd in pipes})


def _close_fork_pipes():
    global _fork_pipes
    if _fork_pipes:
        _close_pipes(_fork_pipes[0])
        _fork_pipes = None


def _use_fork_pipes():
    """In the child: the pipes on 1 and 2, unless the fork itself changed them (``forkpty``'s
    terminal)."""
    global _fork_pipes
    if not _fork_pipes:
        return
    pipes, before = _fork_pipes
    _fork_pipes = None
    for fd, end in pipes.items():
        if _identity(fd) == before[fd]:
            _os_dup2(end, fd)
        _os_close(end)


route_signal = None  # set by the engine: routes a signal with a Python handler to this thread
keep_host_action = None  # set by the engine: sets a Python handler, keeping the process's C action
# The signals the host process handles itself: SIGTERM, SIGINT and SIGHUP (the server's shutdown),
# SIGPIPE (ignored: a write to a closed pipe fails instead of ending the process) and SIGCHLD (the
# process API's children's statuses). In the process namespace contexts share, user code's
# handlers for them are Python's only (see _routing_signal).
_HOST_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD})
_stop_signal = None  # the engine's stop signal (``install``)
_stop_signal_handler = signal.SIG_DFL  # what the code set for it (a namespace context's: _context_stop_handlers); CPython's handler stays the engine's
_stop_signal_blocked = False  # whether the code blocked it on the interpreter thread (it stays deliverable)
# From a cell with top-level ``await`` on to its run's end, ``pykernel_async.stop_landed`` (set by the
# engine, natively): the stop handler asks it whether a stop is raised where the code is or left to
# the cell's loop.
stop_in_await_cell = None
_interpreter_thread = None  # the thread the engine runs code on (Python's main thread), ``install``


def _routing_signal(set_handler):
    """``signal.signal`` that, once CPython installed its handler, has the engine deliver that
    signal to the interpreter thread (where ``python3`` would get it: it has one thread)."""

    def signal_(signalnum, handler, /):
        if not _in_forked_child() and _is_stop_signal(signalnum):
            return _set_stop_signal_handler(set_handler, signalnum, handler)
        if _contexts_have_own_signals():
            _refuse_default_for_armed_timer(signalnum, handler)
            if _current_context is not None:  # else a module the server preloads: the process's
                return _set_context_handler(set_handler, signalnum, handler)
            return _set_in_table(set_handler, signalnum, handler)
        previous = set_handler(signalnum, handler)
        if route_signal is not None:
            route_signal(signalnum)
        return previous

    return _posing_as(set_handler, signal_)


def _set_in_table(set_handler, signalnum, handler):
    """Puts ``handler`` in CPython's table for ``signalnum`` (``set_handler``: ``_signal.signal``,
    with its checks), then has the engine deliver the signal to the interpreter thread; the
    host's signals keep the process's C action (a host's SIGTERM still shuts the server down; a
    handler of the code's runs when the code signals itself)."""
    if signalnum in _HOST_SIGNALS:
        return keep_host_action(signalnum, lambda: set_handler(signalnum, handler))
    previous = set_handler(signalnum, handler)
    if route_signal is not None:
        route_signal(signalnum)
    return previous


# Each namespace context's own signal handlers and timers. In the process every namespace context
# shares, a context's code gets what a process of its own would (docs/architecture.md, "What
# contexts share"): ``signal.signal`` and ``getsignal`` set and give the handlers it set
# (``_context_handlers``), else the process's own (``_process_handlers``: CPython's before a
# context set one). While a context handles a signal, CPython's table holds ``_dispatch_signal``
# for it, which calls the handler of the context whose code runs (``_signals_running``) and holds
# the signal for the others that handle it: each gets it as its next run's code begins
# (``resume_signals``). A context's timers (``signal.alarm``, ``setitimer``) count while its code
# runs: a run's end saves and disarms them (``suspend_signals``), its context's next run arms them
# again. A deleted context's handlers, timers and held signals go (``forget_signals``), and a
# signal no context handles any more gets the process's own handler back.
_context_handlers = {}  # context -> {signal number: the handler its code set}
_context_stop_handlers = {}  # context -> what its code set for the engine's stop signal
_process_handlers = {}  # signal number -> CPython's handler before a context set one
_held_signals = {}  # context -> {signal numbers that came while its code did not run}
_saved_timers = {}  # context -> {timer: (delay, interval)} between its runs
_timers_of = None  # the context whose timers are armed now (its code runs)
# The context whose code runs (not the engine's around it): set as a run's code begins (by
# ``resume_signals`` while ``signal_contexts`` is not empty, else by the engine) and cleared by the
# engine as it ends.
_signals_running = None
# The contexts with handlers, timers or held signals: while it is not empty the engine calls
# ``resume_signals`` and ``suspend_signals`` around each run's code (one object, kept by the engine).
signal_contexts = set()
_original_signal = _signal.signal  # CPython's own (taken before ``install`` guards them)
_original_getsignal = _signal.getsignal
_original_setitimer = _signal.setitimer


def _contexts_have_own_signals():
    """Whether each context's signal handlers and timers are its own: in the process every
    namespace context shares (not ``pykernel run``, a process context's worker, a forked child)."""
    return _guards_host_signals and _process_shared and not _in_forked_child()


def _runs_now(context):
    """Whether the calling thread runs code of the context whose code runs: the interpreter thread
    (code runs on it only during runs), or a thread of that context."""
    return _thread.get_ident() == _interpreter_thread or (context is not None and context == _signals_running)


def _same_handler(one, other):
    return one is other or (isinstance(one, int) and isinstance(other, int) and one == other)


def _set_context_handler(set_handler, signalnum, handler):
    """``signal.signal`` in a namespace context: python3's checks, errors and check for signals
    that came (their handlers run first) through the real call, then ``handler`` is the running
    context's own, and CPython's table holds ``_dispatch_signal`` while any context handles the
    signal (the process's own handler again once none does). Returns what the context had."""
    in_table = _set_in_table(set_handler, signalnum, handler)
    number = operator.index(signalnum)
    process_handler = _process_handlers.setdefault(number, in_table)
    context = _current_context
    own = _context_handlers.setdefault(context, {})
    previous = own.get(number, process_handler)
    if _same_handler(handler, process_handler):
        own.pop(number, None)
    else:
        own[number] = handler
    if not own:
        del _context_handlers[context]
    if any(number in handlers for handlers in _context_handlers.values()):
        _set_in_table(set_handler, number, _dispatch_signal)
        signal_contexts.add(context)
    else:
        del _process_handlers[number]  # the process's own handler, just set, is back in the table
    return previous


def _dispatch_signal(signum, frame):
    """CPython's handler of a signal some namespace context handles: the handler of the context
    whose code runs (its own, else the process's), or, when that is not a function, the signal is
    held for each other context that handles it (``resume_signals``)."""
    running = _signals_running
    if running is not None:
        handler = _context_handlers.get(running, {}).get(signum, _process_handlers.get(signum))
        if callable(handler):
            return handler(signum, frame)
    for context, handlers in _context_handlers.items():
        if context != running and callable(handlers.get(signum)):
            _held_signals.setdefault(context, set()).add(signum)
    return None


def interrupt_handler():
    """The handler the interrupted run's code set for SIGINT when it is a function of its own (not
    ``default_int_handler``): an interrupt calls it where the code is, as python3's Ctrl-C does
    (``asyncio.run``'s, which cancels the main task so that every task's ``finally`` runs; a handler
    that asks a loop to stop). ``None`` when the code set none, ignores SIGINT or restored the
    default: the interrupt raises ``KeyboardInterrupt`` (the engine's stop ends the run either way)."""
    if _process_handlers and _SIGINT in _process_handlers and _contexts_have_own_signals():
        handler = _context_handlers.get(_current_context, {}).get(_SIGINT, _process_handlers[_SIGINT])
    else:
        handler = _original_getsignal(_SIGINT)
    if callable(handler) and handler is not _default_int_handler and handler is not _dispatch_signal:
        return handler
    return None


_SIGINT = int(signal.SIGINT)
_default_int_handler = signal.default_int_handler


def resume_signals(context):
    """At the start of a run's code (while ``signal_contexts`` is not empty): arms the context's
    saved timers again, marks its code as running and returns the signals held for it, which the
    engine then marks as received (their handlers run as the code begins). Nothing here raises:
    a signal handled before the end is held (``_signals_running`` is ``None`` until the last step)."""
    global _timers_of, _signals_running
    held = _held_signals.pop(context, None)
    result = tuple(sorted(held)) if held else ()
    timers = _saved_timers.pop(context, None)
    if timers:
        for which, (delay, interval) in timers.items():
            _original_setitimer(which, delay, interval)
        _timers_of = context
    signal_contexts.add(context)
    _signals_running = context
    return result


def suspend_signals(context):
    """At the end of a run's code (the engine has set ``_signals_running`` to ``None``): saves and
    disarms the timers its code armed, until its context's next run."""
    global _timers_of
    if _timers_of is not None:
        saved = {}
        for which in _TIMER_SIGNALS:
            delay, interval = _original_setitimer(which, 0)
            if delay > 0:
                saved[which] = (delay, interval)
        if saved:
            _saved_timers[_timers_of] = saved
        _timers_of = None
    _update_signal_contexts()


def forget_signals(context):
    """A deleted context: its handlers, timers, held signals go; a signal no context handles
    any more has the process's own handler again."""
    global _timers_of
    _held_signals.pop(context, None)
    _saved_timers.pop(context, None)
    _context_stop_handlers.pop(context, None)
    if _timers_of == context:
        for which in _TIMER_SIGNALS:
            _original_setitimer(which, 0)
        _timers_of = None
    for number in _context_handlers.pop(context, {}):
        if not any(number in handlers for handlers in _context_handlers.values()):
            _restore_process_handler(number)
    _update_signal_contexts()


_SYS_HOOKS = (("excepthook", "__excepthook__"), ("unraisablehook", "__unraisablehook__"),
              ("displayhook", "__displayhook__"), ("breakpointhook", "__breakpointhook__"))
_WARNINGS_HOOKS = (("showwarning", "_showwarning_orig"), ("formatwarning", "_formatwarning_orig"))
# The audit hooks code added (``sys.addaudithook``, see ``_recording_audit_hook_owner``), with the
# context whose code added each: CPython cannot remove one, so a deleted context's globals stay
# as they are while a hook of its lives (``forget_hooks``).
_audit_hooks = []


def _recording_audit_hook_owner(addaudithook):
    """``sys.addaudithook`` that records the hook and the context whose code added it."""
    def addaudithook_recording_owner(hook):
        addaudithook(hook)
        _audit_hooks.append((thread_owner(), hook))
    addaudithook_recording_owner.__name__ = addaudithook.__name__
    addaudithook_recording_owner.__qualname__ = addaudithook.__qualname__
    addaudithook_recording_owner.__doc__ = addaudithook.__doc__
    addaudithook_recording_owner.__module__ = "sys"
    return addaudithook_recording_owner


def forget_hooks(context, namespace):
    """A deleted namespace context (``context``, its globals ``namespace``): the interpreter's
    hooks it set to its own functions, methods, callable objects or ``functools.partial`` of
    them are put back to their defaults (``sys``'s, ``threading.excepthook``,
    ``warnings.showwarning`` and ``formatwarning``), and its finders and path hooks leave
    ``sys.meta_path``, ``sys.path_hooks`` and ``sys.path_importer_cache``, so its cleared
    globals do not break the error reports, warnings, imports and breakpoints of the contexts
    left (these modules are shared). Returns whether its globals must be kept as they are
    instead: an audit hook it added (which nothing can remove) still runs its code."""
    for name, default in _SYS_HOOKS:
        if _defined_in(getattr(sys, name, None), namespace):
            setattr(sys, name, getattr(sys, default))
    threading = sys.modules.get("threading")
    if threading is not None and _defined_in(getattr(threading, "excepthook", None), namespace):
        threading.excepthook = threading.__excepthook__
    warnings = sys.modules.get("warnings")
    for name, original in _WARNINGS_HOOKS:
        if _defined_in(getattr(warnings, name, None), namespace) and hasattr(warnings, original):
            setattr(warnings, name, getattr(warnings, original))
    for name in ("meta_path", "path_hooks"):
        hooks = getattr(sys, name, None)
        if type(hooks) is list:
            hooks[:] = [hook for hook in hooks if not _defined_in(hook, namespace)]
    finders = getattr(sys, "path_importer_cache", None)
    if type(finders) is dict:
        for path, finder in list(finders.items()):
            if _defined_in(finder, namespace):
                del finders[path]
    return any(owner == context or _defined_in(hook, namespace) for owner, hook in _audit_hooks)


def _defined_in(hook, namespace, depth=0):
    """Whether ``hook`` is code of ``namespace``: a function whose globals are ``namespace``, a
    method or ``functools.partial`` of one, a class with such a function in its own or its
    bases' dictionaries, or an instance of one. No code of the hook's runs: only the types and
    dictionaries are looked into."""
    if depth > 8:  # a partial of a partial of ...
        return False
    kind = type(hook)
    if kind is types.FunctionType:
        return hook.__globals__ is namespace
    if kind is types.MethodType:
        return _defined_in(hook.__func__, namespace, depth + 1) or _defined_in(hook.__self__, namespace, depth + 1)
    mro = _TYPE_MRO.__get__(kind)
    if functools.partial in mro:
        return _defined_in(_PARTIAL_FUNC.__get__(hook), namespace, depth + 1)
    return _class_defined_in(hook if type in mro else kind, namespace)


# The descriptors that give a class's bases and dictionary, and a partial's function, whatever
# the class or its metaclass defines.
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]
_PARTIAL_FUNC = functools.partial.__dict__["func"]


def _class_defined_in(cls, namespace):
    """Whether a class of ``cls``'s method resolution order has a function (plain, static or
    class method, property getter) whose globals are ``namespace``."""
    for base in _TYPE_MRO.__get__(cls):
        for value in _TYPE_DICT.__get__(base).values():
            kind = type(value)
            if kind in (staticmethod, classmethod):
                value = value.__func__
            elif kind is property:
                value = value.fget
            if type(value) is types.FunctionType and value.__globals__ is namespace:
                return True
    return False


def _restore_process_handler(number):
    """Puts back the handler ``number`` had before a context set one (``SIG_DFL`` for a handler
    that was not Python's: the table cannot hold it)."""
    handler = _process_handlers.pop(number)
    try:
        _set_in_table(_original_signal, number, signal.SIG_DFL if handler is None else handler)
    except (OSError, ValueError, TypeError):
        pass


def adopt_signals():
    """For ``--preload``, whose imports run in a context of their own deleted afterwards: the
    handlers and timers that context's code set become the process's own, as the modules that
    set them are every context's."""
    global _stop_signal_handler, _timers_of
    context = _current_context
    for number, handler in _context_handlers.pop(context, {}).items():
        if any(number in handlers for handlers in _context_handlers.values()):
            _process_handlers[number] = handler
        else:
            del _process_handlers[number]
            _set_in_table(_original_signal, number, handler)
    _stop_signal_handler = _context_stop_handlers.pop(context, _stop_signal_handler)
    if _timers_of == context:
        _timers_of = None
    _update_signal_contexts()


def _update_signal_contexts():
    signal_contexts.clear()
    signal_contexts.update(_context_handlers, _context_stop_handlers, _held_signals, _saved_timers)


def _materialize_signals_in_child():
    """In a child forked by a namespace context's code: CPython's table gets that context's
    handlers (the process's own for the others), as python3's child inherits its process's."""
    if not _process_handlers:
        return
    owner = getattr(threading.current_thread(), "_pykernel_context", None) or _current_context
    own = _context_handlers.get(owner, {})
    for number, process_handler in list(_process_handlers.items()):
        handler = own.get(number, process_handler)
        try:
            _original_signal(number, signal.SIG_DFL if handler is None else handler)
        except (OSError, ValueError, TypeError):
            pass


def _is_stop_signal(signalnum):
    try:
        return operator.index(signalnum) == _stop_signal
    except TypeError:
        return False


def _set_stop_signal_handler(set_handler, signalnum, handler):
    """``signal.signal`` for the engine's stop signal: checked as python3 checks it (the thread, the
    handler), recorded for ``signal.getsignal`` and for the code signalling itself, and the
    engine's handler kept: code that ignores every signal is still stopped by interrupts and
    timeouts."""
    global _stop_signal_handler
    engine_handler = set_handler(signalnum, handler)
    set_handler(signalnum, engine_handler)
    previous = _stop_signal_handler_of_caller()
    if _contexts_have_own_signals() and _current_context is not None:
        if _same_handler(handler, signal.SIG_DFL):
            _context_stop_handlers.pop(_current_context, None)
        else:
            _context_stop_handlers[_current_context] = handler
            signal_contexts.add(_current_context)
    else:
        _stop_signal_handler = handler
    return _as_handler_enum(previous)


def _stop_signal_handler_of_caller():
    """What the calling code set for the engine's stop signal (its context's, in a namespace context)."""
    if _contexts_have_own_signals() and thread_owner() is not None:
        return _context_stop_handlers.get(thread_owner(), signal.SIG_DFL)
    return _stop_signal_handler


def _as_handler_enum(handler):
    """A handler as ``signal.signal``/``signal.getsignal`` give it (``Handlers.SIG_DFL``, not 0)."""
    return signal.Handlers(handler) if type(handler) is int and handler in (0, 1) else handler


def _keeping_stop_signal(getsignal):
    """``signal.getsignal`` that gives, for the engine's stop signal, what the code set (python3's
    ``Handlers.SIG_DFL`` until then), and in a namespace context the handlers of the calling
    code's context (``_context_handlers``)."""

    def getsignal_(signalnum, /):
        if not _in_forked_child() and _is_stop_signal(signalnum):
            getsignal(signalnum)  # its checks, as python3's
            return _as_handler_enum(_stop_signal_handler_of_caller())
        in_table = getsignal(signalnum)
        if _process_handlers and _contexts_have_own_signals():
            number = operator.index(signalnum)
            if number in _process_handlers:
                return _context_handlers.get(thread_owner(), {}).get(number, _process_handlers[number])
        return in_table

    return _posing_as(getsignal, getsignal_)


def _keeping_stop_signal_deliverable(pthread_sigmask):
    """``signal.pthread_sigmask`` that never blocks the engine's stop signal on the interpreter
    thread (a call blocked there, a sleep, could not be stopped, and the thread serves every
    later run); the mask it reports is the one the code set."""

    def pthread_sigmask_(how, mask, /):
        global _stop_signal_blocked
        try:
            numbers = _without_invalid_signals([operator.index(number) for number in mask])
        except TypeError:
            return pthread_sigmask(how, mask)  # its error, as python3's
        if _in_forked_child() or _thread.get_ident() != _interpreter_thread:
            return pthread_sigmask(how, numbers)
        wanted = set(numbers)
        named = _stop_signal in wanted
        if how in (signal.SIG_BLOCK, signal.SIG_SETMASK):
            wanted.discard(_stop_signal)
        previous = pthread_sigmask(how, wanted)
        was_blocked = _stop_signal_blocked
        if how == signal.SIG_BLOCK:
            _stop_signal_blocked = was_blocked or named
        elif how == signal.SIG_UNBLOCK:
            _stop_signal_blocked = was_blocked and not named
        else:
            _stop_signal_blocked = named
        return previous | {_stop_signal} if was_blocked else previous

    return _posing_as(pthread_sigmask, pthread_sigmask_)


def _without_invalid_signals(numbers):
    """The signal numbers of a mask without those the C library cannot hold (glibc's 32 and 33),
    each warned of as python3 warns (``RuntimeWarning: invalid signal number 32, please use
    valid_signals()``) from the line that called ``pthread_sigmask`` (``signal.py``'s, or the
    code's), not from the engine's wrapper. Numbers from the first out of range on are kept for the
    real call, whose ``ValueError`` python3 raises before any later warning."""
    kept = []
    for index, number in enumerate(numbers):
        if not 0 < number < _signal.NSIG:
            kept.extend(numbers[index:])
            break
        if number in _valid_signals:
            kept.append(number)
        else:
            warnings.warn(f"invalid signal number {number}, please use valid_signals()", RuntimeWarning, stacklevel=3)
    return kept


_valid_signals = frozenset(int(number) for number in _signal.valid_signals())


def _keeping_stop_signal_interrupting(siginterrupt):
    """``signal.siginterrupt`` that leaves the engine's stop signal interrupting system calls (with
    ``SA_RESTART`` a read on a pipe would go on after it, and could not be stopped)."""

    def siginterrupt_(signalnum, flag, /):
        result = siginterrupt(signalnum, flag)
        if not _in_forked_child() and _is_stop_signal(signalnum):
            siginterrupt(signalnum, True)
        return result

    return _posing_as(siginterrupt, siginterrupt_)


class ProcessExit(SystemExit):
    """What ``os._exit()`` and ``os.abort()`` raise in the kernel's own process: the run ends with a
    ``SystemExit`` record (a note says why), and the process every context shares lives on."""


ProcessExit.__name__ = ProcessExit.__qualname__ = "SystemExit"
ProcessExit.__module__ = "builtins"

def _exit_note(call, verb="ends"):
    """The note of a ``ProcessExit``: what python3 would have done, and what PyKernel did instead
    (the run ended; called from another thread than the run's, only that thread)."""
    if _thread.get_ident() != _interpreter_thread:
        instead = "PyKernel ended only the calling thread instead."
    elif _process_shared:
        instead = "here that process runs every context, so PyKernel ended this run instead (the context keeps its state)."
    else:
        instead = "here that process is the context's worker, so PyKernel ended this run instead (the context keeps its state)."
    return f"{call} {verb} the whole process in python3; {instead}"


def _posing_as(original, replacement):
    """``replacement`` with the name, documentation and module of ``original`` (a function of
    ``os`` or ``signal`` it stands in for)."""
    replacement.__name__ = replacement.__qualname__ = original.__name__
    replacement.__doc__, replacement.__module__ = original.__doc__, original.__module__
    return replacement


def _guarded_exit(posix_exit):
    """``os._exit`` that exits for real only in a forked child (``multiprocessing`` workers, code
    after ``os.fork()``)."""

    def _exit(status, /):
        status = operator.index(status)
        if _in_forked_child():
            posix_exit(status)
        error = ProcessExit(status)
        error.add_note(_exit_note(f"os._exit({status})"))
        raise error

    return _posing_as(posix_exit, _exit)


# Signals whose default action leaves a process running, and those that stop it.
_IGNORED_BY_DEFAULT = frozenset({signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT})
_STOPPING = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})


def _signal_to_this_process(signum, call, alone=False):
    """What a signal the kernel's own process sends itself (``os.kill(os.getpid(), ...)``, its own
    group, ``signal.raise_signal``) does when it would end or stop that process, which runs every
    context; ``False`` when it is delivered for real (a Python handler of the code's own, signal
    0, a process forked by the code, or a process context's worker, whose process is its own).

    SIGINT under Python's default handler raises ``KeyboardInterrupt`` in the main thread, as in
    python3, and the code's own handler of SIGTERM or SIGINT (Python's only: the host's stays in
    the process, see ``_routing_signal``) runs there too; an ignored signal, or one ignored by
    default, does nothing; any other signal whose
    default action ends or stops the process ends the run with a ``SystemExit`` of the status a
    shell would show (128 + the signal), as ``os.abort()`` does, with a note saying why. In a
    process context's worker such a signal is delivered after the output written so far was
    let out (``_let_output_out_before_the_end``). ``alone``: the signal is for this process only
    (not its group, whose other processes must get it)."""
    signum = operator.index(signum)
    if _in_forked_child() or signum == 0:
        return False
    try:
        handler = signal.getsignal(signum)
    except ValueError:
        return False  # not a signal number: the real call raises as python3's
    if signum == _stop_signal and callable(handler):
        handler(signum, sys._getframe(2))  # the code's handler of the engine's signal, called here
        return True
    if signum == signal.SIGINT and handler is signal.default_int_handler:
        _interrupt_main()  # raised where the main thread is, as python3's handler does
        return True
    if callable(handler) and signum in _HOST_SIGNALS and _process_shared:
        _interrupt_main(signum)  # the code's handler, in the main thread (see _routing_signal)
        return True
    if alone and callable(handler) and _thread.get_ident() == _main_thread_ident():
        # The code's handler runs before its next statement, as in python3, whose single thread
        # the signal is delivered to as the call returns; in the engine's process the kernel may
        # deliver it to another thread, and the handler then ran some statements later.
        _thread.interrupt_main(signum)
        return True
    if callable(handler):
        return False
    if not _process_shared:
        if handler != signal.SIG_IGN and signum not in _IGNORED_BY_DEFAULT and signum not in _STOPPING:
            _let_output_out_before_the_end()
        return False
    if handler == signal.SIG_IGN or (handler in (signal.SIG_DFL, None) and signum in _IGNORED_BY_DEFAULT):
        return True
    error = ProcessExit(128 + signum)
    error.add_note(_exit_note(call, "stops" if signum in _STOPPING else "ends"))
    raise error


def _main_thread_ident():
    """The ident of the thread Python runs signal handlers in (the interpreter thread)."""
    return threading.main_thread().ident


# How long a process context's worker lives on before a signal its code sends itself ends it
# (the crash linger of docs/protocol.md's crash answers).
_LINGER_BEFORE_THE_END = 0.2


def _let_output_out_before_the_end():
    """A process context's worker is about to end by a signal its code sends itself (SIGKILL,
    SIGTERM, ...): what the code wrote so far reaches the server first, as what python3 flushed
    reaches its reader before the process dies. The streams are flushed (that hands their output
    out at once) and the worker's output threads get the crash linger to send it and whatever
    subprocesses or C code wrote to the descriptors."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    time.sleep(_LINGER_BEFORE_THE_END)


def _guarded_kill(posix_kill):
    """``os.kill`` for the kernel's own process: a signal to itself or its group goes through
    ``_signal_to_this_process``."""

    def kill(pid, signum, /):
        pid = operator.index(pid)
        if pid in (os.getpid(), 0, -os.getpgrp()) and _signal_to_this_process(
                signum, f"os.kill({pid}, {operator.index(signum)})", alone=pid == os.getpid()):
            return None
        return posix_kill(pid, signum)

    return _posing_as(posix_kill, kill)


def _guarded_killpg(posix_killpg):
    """``os.killpg`` for the kernel's own process: to its own group, as ``_guarded_kill``."""

    def killpg(pgid, signum, /):
        pgid = operator.index(pgid)
        if pgid in (0, os.getpgrp()) and _signal_to_this_process(signum, f"os.killpg({pgid}, {operator.index(signum)})"):
            return None
        return posix_killpg(pgid, signum)

    return _posing_as(posix_killpg, killpg)


def _keeping_the_session(call, concerns_this_process):
    """``os.setsid``, ``os.setpgrp`` or ``os.setpgid`` that does not move the process every
    namespace context shares (the server) into a session or group of its own (its terminal's
    Ctrl-C and its supervisor's group signals would no longer reach it): ``PermissionError``,
    as for the other calls that would change that process for every context. A process
    context's worker leads a session and process group of its own already (through which the
    server ends it and what its runs started; a session leader's own call fails with a bare
    ``EPERM``): ``PermissionError`` that says so. In a child the code forked (a daemon's double
    fork) they work as in python3."""

    def keeping(*arguments):
        try:
            concerned = concerns_this_process(*arguments)
        except (TypeError, ValueError):
            concerned = False  # the call raises its own error
        if not _in_forked_child() and concerned:
            if _process_shared:
                raise PermissionError(
                    errno.EPERM, f"os.{call.__name__} would move the process that runs every namespace context (the "
                    "server) into a session or process group of its own; start a process with start_new_session=True "
                    "(or process_group=0)")
            raise PermissionError(
                errno.EPERM, f"os.{call.__name__}: a process context's worker leads a session and process group of its "
                "own already (the server ends it, and the processes its runs start, through them); start a process "
                "with start_new_session=True (or process_group=0)")
        return call(*arguments)

    return _posing_as(call, keeping)


# The calls that change the users or groups of the process (and so of every process it starts).
_IDENTITY_CALLS = ("setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid",
                   "setgroups", "initgroups")


def _keeping_the_identity(call):
    """``os.setuid``, ``os.setgroups`` and the other calls of ``_IDENTITY_CALLS``, which in the
    process every namespace context shares (the server) would change the user or groups of every
    context, of the processes the server starts (``process.exec``, sessions, PTYs, the process
    contexts started afterwards), for good: ``PermissionError``, as for ``os.setsid``. In a child
    the code forked and in a process context they work as in python3."""

    def keeping(*arguments):
        if _process_shared and not _in_forked_child():
            raise PermissionError(
                errno.EPERM, f"os.{call.__name__} would change the user or groups of the process that runs every "
                "namespace context (the server) and of every process it starts; run the code in a process context "
                "(isolation \"process\"), or start a process with subprocess's user=, group= or extra_groups=")
        return call(*arguments)

    return _posing_as(call, keeping)


def _guarded_raise_signal(raise_signal):
    """``signal.raise_signal`` for the kernel's own process, as ``_guarded_kill``."""

    def raise_signal_guarded(signalnum, /):
        if _signal_to_this_process(signalnum, f"signal.raise_signal({operator.index(signalnum)})"):
            return None
        return raise_signal(signalnum)

    return _posing_as(raise_signal, raise_signal_guarded)


def _guarded_pthread_kill(pthread_kill):
    """``signal.pthread_kill`` for the kernel's own process: a signal sent to one of its threads
    acts on the whole process (its default action ends or stops every thread), so it goes through
    ``_signal_to_this_process``. Only Python's threads can be named: glibc takes any other number
    as a thread's address (python3 crashes on a stale or made-up one; the shared process would
    take every context with it), so one that is not a live Python thread is ``ProcessLookupError``."""

    def pthread_kill_guarded(thread_id, signalnum, /):
        if isinstance(thread_id, int) and _process_shared and not _in_forked_child():
            if thread_id not in sys._current_frames():
                raise ProcessLookupError(errno.ESRCH, f"{os.strerror(errno.ESRCH)}: {thread_id} is not a live Python thread")
            if _signal_to_this_process(signalnum, f"signal.pthread_kill({thread_id}, {operator.index(signalnum)})"):
                return None
        return pthread_kill(thread_id, signalnum)

    return _posing_as(pthread_kill, pthread_kill_guarded)


def _guarded_pidfd_send_signal(pidfd_send_signal):
    """``signal.pidfd_send_signal`` for the kernel's own process: through a pidfd of that process
    (``os.pidfd_open(os.getpid())``), as ``_guarded_kill``."""

    def pidfd_send_signal_guarded(pidfd, sig, siginfo=None, flags=0, /):
        if _pid_of_pidfd(pidfd) == os.getpid() and _signal_to_this_process(sig, f"signal.pidfd_send_signal({pidfd}, {operator.index(sig)})"):
            return None
        return pidfd_send_signal(pidfd, sig, siginfo, flags)

    return _posing_as(pidfd_send_signal, pidfd_send_signal_guarded)


def _pid_of_pidfd(descriptor):
    """The process a pidfd refers to (its ``Pid:`` in ``/proc/self/fdinfo``), ``None`` if it is not one."""
    try:
        with open(f"/proc/self/fdinfo/{operator.index(descriptor)}", encoding="ascii") as info:
            for line in info:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError):
        pass
    return None


def _guarded_abort(posix_abort):
    """``os.abort`` that aborts for real only in a forked child."""

    def abort():
        if _in_forked_child():
            posix_abort()
        error = ProcessExit(134)
        error.add_note(_exit_note("os.abort()"))
        raise error

    return _posing_as(posix_abort, abort)


def _announcing_write(posix_write):
    """``os.write`` that raises the audit event ``os.write`` (CPython has none) for descriptors 1
    and 2, so the engine orders bytes written there before the code's next ``print``."""
    audit = sys.audit

    def write(fd, data, /):
        if fd == 1 or fd == 2:
            audit("os.write", fd)
        return posix_write(fd, data)

    write.__name__, write.__qualname__, write.__doc__ = "write", "write", posix_write.__doc__
    write.__module__ = posix_write.__module__
    return write


def end_program():
    """What python3 does after a program's last line, before it tears its modules down
    (``Py_FinalizeEx``): waits for the threads that are not daemons (``join_threads``), runs the
    ``atexit`` handlers (an exception in one is reported as python3 reports it, and the others
    still run), flushes the streams (``flush_at_exit``), collects the program's unreachable cycles
    when it left the collector enabled (``PyGC_Collect``), then ``end_streams``. The engine runs
    these steps itself, the handlers and the collection with no frame of its own under them; this
    is a forked child's end (``end_forked_child``). Returns what ``flush_standard_streams`` returns."""
    join_threads()
    _run_exit_functions()
    failure = flush_at_exit()
    collect_at_exit()
    end_streams()
    return failure


def join_threads():
    """Waits for the threads that are not daemons as python3 does at the end of a program
    (``threading._shutdown``: its failure is reported as python3 reports it). A trace or profile
    function the code left set sees that function run as python3 shows it, when the program has
    imported ``threading`` (see ``_program_imported_threading``); nothing else of the engine's
    end of a program."""
    try:
        if (sys.gettrace() is not None or sys.getprofile() is not None) and _program_imported_threading():
            as_the_code(threading._shutdown)
        else:
            threading._shutdown()
    except BaseException as error:  # noqa: B036 -- python3 reports even a KeyboardInterrupt here and goes on
        _report_ignored(threading, error)


def _program_imported_threading():
    """Whether python3 would have ``threading`` imported at the end of the program (it joins the
    threads only then), which the engine, having imported it itself, can only tell in part: the
    code started a thread, or the program's namespace holds the module, a class or a function of
    it (``import threading``, ``from threading import Thread``)."""
    if _code_started_threads:
        return True
    main = sys.modules.get("__main__")
    for value in list(getattr(main, "__dict__", {}).values()):
        if value is threading:
            return True
        if type(value) is types.FunctionType and value.__module__ == "threading":
            return True
        if isinstance(value, type) and type.__dict__["__module__"].__get__(value) == "threading":
            return True
    return False


# Whether the program left the collector enabled at its end (``flush_at_exit``, ``collect_at_exit``).
_collector_enabled_at_exit = None


def flush_at_exit():
    """The end of a program after its ``atexit`` handlers: flushes the standard streams, as python3
    does (``flush_std_files``), and the files left open (``_flush_open_files``). Returns what
    ``flush_standard_streams`` returns. The collector is paused from here to ``collect_at_exit``:
    python3 makes no Python objects between its ``atexit`` handlers and that collection, while the
    engine's scan for open files counts as hundreds of allocations; an automatic collection it set
    off moved the program's objects behind its globals in the collector's lists, and their
    finalizers then ran in another order than python3's (a list's items before the objects bound
    to names after it)."""
    import gc
    global _collector_enabled_at_exit
    _collector_enabled_at_exit = gc.isenabled()
    gc.disable()
    failure = flush_standard_streams()
    _flush_open_files()
    return failure


def collect_at_exit():
    """python3's collection before it frees the modules (``PyGC_Collect`` in ``Py_FinalizeEx``),
    when the program left the collector enabled: cycles already unreachable are finalized there, in
    the collector's order, before the globals and with the program's streams in place. The
    collector is then as the program left it."""
    import gc
    enabled = gc.isenabled() if _collector_enabled_at_exit is None else _collector_enabled_at_exit
    if enabled:
        gc.collect()
        gc.enable()


def end_streams():
    """The end of a program after its last collection but one: lets the last uncaught exception go
    (``sys.last_value``...) and puts back the streams the program replaced (``sys.__stdout__``...),
    as python3 does as it begins to free the modules (``finalize_modules_delete_special``). The
    engine then lets the program's globals go (what their ``__del__`` methods print goes to the
    original streams)."""
    # The last uncaught exception let go (its frames' objects freed, on the program's streams),
    # then the original streams back.
    sys.last_type = sys.last_value = sys.last_traceback = None
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__


def _run_exit_functions():
    """``atexit``'s handlers, run as python3 runs them at exit, where no Python frame runs: an
    exception of a handler that is not Python code (a builtin) is reported without a traceback,
    not with this function's frame, which ``PyErr_WriteUnraisable`` would give it."""
    hook = sys.unraisablehook

    def without_engine_frame(unraisable):
        traceback = unraisable.exc_traceback
        if traceback is not None and traceback.tb_next is None \
                and traceback.tb_frame.f_code.co_filename.startswith(_ENGINE_FILENAME_PREFIX):
            unraisable = type(unraisable)((unraisable.exc_type, unraisable.exc_value, None,
                                           unraisable.err_msg, unraisable.object))
        hook(unraisable)

    sys.unraisablehook = without_engine_frame
    try:
        atexit._run_exitfuncs()
    finally:
        if sys.unraisablehook is without_engine_frame:
            sys.unraisablehook = hook


def begin_teardown():
    """Called as the engine lets a program's globals go at its end: CPython's own printer of
    unraisable exceptions (a ``__del__`` that raises) then shows frames without their source lines,
    as python3's does once its modules are gone; a hook the program set is left to it."""
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _teardown_unraisable_hook


def _teardown_unraisable_hook(unraisable):
    file = sys.stderr
    if file is None:
        return
    try:
        file.write(pykernel_traceback.format_unraisable(unraisable, source_lines=False))
        file.flush()
    except Exception:  # noqa: BLE001 -- as CPython's printer when the stream fails: on descriptor 2
        _write_stderr(pykernel_traceback.format_unraisable(unraisable, source_lines=False))


def globals_keepers(namespace):
    """Weak references to the functions of a program's globals (at its top level and in its
    classes): each holds the globals (``__globals__``), so one still alive once the engine let them
    go and collected is what keeps them (a hook or callback another module holds: a
    ``warnings.showwarning``, a ``sys.excepthook``)."""
    keepers = []
    for value in list(namespace.values()):
        for candidate in [value, *(vars(value).values() if isinstance(value, type) else ())]:
            if isinstance(candidate, (staticmethod, classmethod)):
                candidate = candidate.__func__
            if isinstance(candidate, types.FunctionType) and candidate.__globals__ is namespace:
                keepers.append(weakref.ref(candidate))
    return keepers


def clear_surviving_globals(keepers):
    """What python3's ``Py_FinalizeEx`` does to globals still alive after the engine's collection
    because another module holds one of their functions (a hook): it drops every module from
    ``sys.modules`` and collects, and globals no longer reachable then are freed (in the order their
    values were set, ``__del__`` methods printing). Globals still reachable from what outlives that
    step -- ``sys`` and ``builtins`` (cleared last, when nothing prints any more) and ``threading``
    (which the interpreter keeps for its shutdown) -- are left alone, as are all while a daemon
    thread runs (python3 has stopped them by then; here one would see its globals go)."""
    if any(thread.daemon and thread.is_alive() for thread in threading.enumerate()):
        return
    alive = [function for function in (keeper() for keeper in keepers) if function is not None]
    if not alive:
        return
    namespace = alive[0].__globals__
    del alive
    if not _outlives_the_modules(namespace):
        namespace.clear()


# What python3 deletes from sys before it drops the modules (finalize_modules_delete_special).
_SYS_DELETED_FIRST = frozenset(("modules", "path", "argv", "ps1", "ps2", "last_type", "last_value",
                                "last_traceback", "path_hooks", "path_importer_cache", "meta_path",
                                "__interactivehook__"))


def _outlives_the_modules(target):
    """Whether ``target`` is reachable from ``sys``, ``builtins`` or ``threading`` without going
    through another module or its globals (python3 drops and clears those first)."""
    import gc
    module_dicts = {id(vars(module)) for module in list(sys.modules.values()) if isinstance(module, types.ModuleType)}
    stack = [value for name, value in vars(sys).items() if name not in _SYS_DELETED_FIRST]
    stack += list(vars(builtins).values()) + list(vars(threading).values())
    seen = set()
    while stack:
        candidate = stack.pop()
        if candidate is target:
            return True
        if id(candidate) in seen or id(candidate) in module_dicts or isinstance(candidate, types.ModuleType):
            continue
        seen.add(id(candidate))
        stack.extend(gc.get_referents(candidate))
    return False


def _flush_open_files():
    """Flushes every file still open for writing. python3 flushes them as it frees the program's
    objects at exit; a collection frees objects in cycles in no such order (a text file's buffer
    can be closed before the text in front of it is flushed), so they are flushed first. They are
    found with no collection running (``flush_at_exit`` pauses the collector): the list of every
    object holds the program's unreachable cycles, which a collection would keep and reorder
    (python3 finalizes them in the order they were made)."""
    import gc
    files = [candidate for candidate in gc.get_objects() if isinstance(candidate, io.IOBase)]
    for candidate in files:
        try:
            if candidate.closed or not candidate.writable():
                continue
        except ValueError:
            continue  # a text stream whose buffer was detached: nothing of its own to flush
        try:
            candidate.flush()
        except Exception:  # noqa: BLE001,S110 -- python3 (not in dev mode) says nothing of a file it cannot flush as it frees it
            pass


def _report_ignored(origin, error):
    """Reports an exception python3 ignores at exit (``origin``: what it was ignored in), as
    ``PyErr_WriteUnraisable(origin)`` does (``_PyErr_WriteUnraisableMsg``), without the engine's
    frame that caught it: ``sys.unraisablehook`` is called (after the ``sys.unraisablehook`` audit
    event); when there is none, or it is ``None``, the default printer prints (``Type: message``
    even for an empty message, no chained exceptions, no notes); when the hook or an audit hook
    raises, the default printer reports that exception instead."""
    unraisable = _UnraisableHookArgs((type(error), error, error.__traceback__.tb_next, None, origin))
    hook = getattr(sys, "unraisablehook", None)
    try:
        if hook is not None:
            try:
                sys.audit("sys.unraisablehook", hook, unraisable)
            except BaseException as audit_error:  # noqa: B036 -- reported as CPython reports it
                unraisable = _UnraisableHookArgs((type(audit_error), audit_error, audit_error.__traceback__.tb_next,
                                                  "Exception ignored in audit hook", None))
            else:
                try:
                    hook(unraisable)
                    return
                except BaseException as hook_error:  # noqa: B036 -- CPython reports whatever the hook raised
                    unraisable = _UnraisableHookArgs((type(hook_error), hook_error, hook_error.__traceback__.tb_next,
                                                      "Exception ignored in sys.unraisablehook", hook))
        (_cpython_unraisable_hook if _process_streams else _unraisable_hook)(unraisable)
    except BaseException:  # noqa: B036,S110 -- the default printer's failure is ignored, as CPython's
        pass


def flush_standard_streams():
    """Flushes ``sys.stdout`` and ``sys.stderr`` as python3 does before it exits (``None`` or a
    closed one is skipped). A failure to flush ``sys.stdout`` is reported as python3 reports an
    ignored exception and returned as ``(name, value, "")`` (python3 then exits with status 120);
    one of ``sys.stderr`` is ignored, as python3 ignores it. Returns ``None`` when stdout flushed."""
    failure = None
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not getattr(stream, "closed", False):
                stream.flush()
        except Exception as error:
            if stream is sys.stdout:
                _report_ignored(stream, error)
                failure = (pykernel_traceback.exception_name(error), pykernel_traceback.exception_value(error), "")
    return failure


def flush_io():
    """What python3 does after a file's code ends, before it prints an uncaught exception:
    flushes ``sys.stderr`` then ``sys.stdout``, ignoring any error (a closed pipe is reported at
    the exit's flush)."""
    for stream in (sys.stderr, sys.stdout):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- python3's flush_io ignores every failure here
            pass


def new_namespace():
    """``(globals, cells, module)`` of a fresh context: globals as ``python3 file.py`` gives its
    ``__main__``, the dict of a module named ``__main__`` that the engine makes
    ``sys.modules['__main__']`` during the context's runs (so ``pickle``, ``typing`` and
    ``import __main__`` find what the code defined), and an empty store for the sources of its cells."""
    module = types.ModuleType("__main__")
    globals_ = module.__dict__
    globals_["__annotations__"] = {}
    globals_["__builtins__"] = builtins
    return globals_, {}, module


# The process's environment as os made it at start: a run's ``env`` goes there (and to its
# processes, whose environment is the process's, as python3's subprocess and os.system use it),
# whatever the code rebound or deleted ``os.environ`` to.
_environ = os.environ


def _run_environments():
    """The mappings a run's ``env`` is set in and restored from: the engine's ``_environ``, and
    the ``os.environ`` of an ``os`` the code loaded anew (``importlib.reload`` makes another)."""
    current = getattr(os, "environ", None)
    if current is not _environ and type(current).__name__ == "_Environ" and type(current).__module__ == "os":
        return (_environ, current)
    return (_environ,)


def begin_run(cells, filename, source, env, context):
    """Registers the cell's source and applies the run's environment; returns what to restore."""
    global _current_cells, _current_context
    _current_cells = cells
    _current_context = context
    restore_streams()
    if stream_contexts:
        apply_stream_settings(context)
    cells[filename] = source
    if not env:
        return None
    saved = {}
    for key, value in env.items():
        saved[key] = _environ.get(key, _MISSING)
        for environ in _run_environments():
            environ[key] = value
    return saved


def restore_streams():
    """Puts back the standard streams when a run replaced one (``sys.stdout``, ``sys.__stdout__``,
    ...) and did not restore it, and drops what a run set on the engine's streams and their
    ``buffer`` (``sys.stdout.write = ...``; not ``reconfigure``'s ``write``): that must not
    swallow the output of later runs (of any context: ``sys`` is shared)."""
    if _streams is None:
        return
    # ``getattr``: a run may have deleted one (``del sys.stdout``), as python3 lets a program do.
    names = ("stdout", "stderr", "stdin")
    if any(getattr(sys, name, None) is not stream for name, stream in zip(names, _streams)):
        sys.stdout, sys.stderr, sys.stdin = _streams
    if any(getattr(sys, f"__{name}__", None) is not stream for name, stream in zip(names, _streams)):
        sys.__stdout__, sys.__stderr__, sys.__stdin__ = _streams
    for stream in _stream_objects:
        attributes = stream.__dict__
        for name in [name for name, value in attributes.items() if not _reconfigured_write(stream, name, value)]:
            del attributes[name]
    for stream in _streams[:2]:
        stream._use(stream._settings)  # ``reconfigure``'s ``write`` where a dropped one hid it


def apply_stream_settings(context):
    """As a run of ``context`` begins (while ``stream_contexts`` is not empty): ``sys.stdout`` and
    ``sys.stderr`` write with the settings its code gave them, else with their defaults."""
    global _applied_stream_context
    _applied_stream_context = context
    for stream in _streams[:2]:
        stream._use(stream._contexts.get(context, stream._default))


def forget_stream_settings(context):
    """A deleted context: the settings its code gave the streams go."""
    for stream in _streams:
        stream._contexts.pop(context, None)
    stream_contexts.discard(context)
    input_contexts.discard(context)
    if context == _applied_stream_context or not stream_contexts:
        apply_stream_settings(_NOBODY)


def adopt_stream_settings():
    """For ``--preload``, whose imports run in a context of their own deleted afterwards: the
    settings its code gave the streams become their defaults, every context's."""
    context = _current_context
    for stream in _streams:
        settings = stream._contexts.pop(context, None)
        if settings is not None:
            stream._default = settings
    _streams[2]._default.decoding = False  # what the context read is not the next run's
    stream_contexts.discard(context)
    input_contexts.discard(context)
    apply_stream_settings(_NOBODY)


def _note_stream_contexts(context):
    """``stream_contexts`` after a change to the settings of ``context``."""
    if any(context in stream._contexts for stream in _streams[:2]):
        stream_contexts.add(context)
    else:
        stream_contexts.discard(context)


def _reconfigured_write(stream, name, value):
    """Whether ``stream.name = value`` is what ``KernelStream.reconfigure`` sets for an encoding
    or error handler the native ``write`` does not write."""
    return (name == "write" and getattr(value, "__func__", None) is KernelStream._encoded_write
            and getattr(value, "__self__", None) is stream)


def decode_file_source(data):
    """A file's text as python3 decodes it to run it (PEP 263: a UTF-8 byte order mark or a coding
    cookie in the first two lines, else UTF-8), or ``None`` when it cannot be decoded so (compiling
    the bytes then raises python3's ``SyntaxError``)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return None


def decodes_by_its_cookie(data):
    """Whether python3's file tokenizer reads this source again through a reader of the encoding
    its coding cookie names (any other than UTF-8: tokenizer.c's ``fp_setreadl``, from where it is
    in the file's descriptor), which needs a file it can seek in: from a pipe python3 fails with
    ``SyntaxError: encoding problem: <encoding>``. ``False`` for a source whose cookie python3
    refuses anyway (its bytes do not compile either)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return False
    return encoding not in ("utf-8", "utf-8-sig")


def program_kind(path, start):
    """How python3 runs the path given as its program (``pykernel run PATH``): ``"module"`` when
    the path has an importer (a directory, a zip file: runpy runs the ``__main__`` it finds there,
    Modules/main.c's ``pymain_get_importer``), else ``"compiled"`` for a ``.pyc`` (by its name, or
    by ``start``, the file's first bytes when it is a regular file, being the first half of the
    magic number: pythonrun.c's ``maybe_pyc_file``), else ``"source"``. The importer is looked up
    as ``PyImport_GetImporter`` does: in ``sys.path_importer_cache``, else from the first of
    ``sys.path_hooks`` that takes the path, cached (``None`` cached when none does)."""
    cache = sys.path_importer_cache
    importer = cache.get(path)
    if path not in cache:
        cache[path] = None
        for hook in sys.path_hooks:
            try:
                importer = hook(path)
            except ImportError:
                continue
            cache[path] = importer
            break
    if importer is not None:
        return "module"
    if path.endswith(".pyc") or start[:2] == importlib._bootstrap_external.MAGIC_NUMBER[:2]:
        return "compiled"
    return "source"


def find_main_module():
    """Raises ``ImportError`` with runpy's reason when runpy has no ``__main__`` module to run from
    ``sys.path`` (``can't find '__main__' module in '...'``), which python3 prints after its own
    name (``sys.executable``) before it exits with status 1: ``pykernel run`` names itself. What
    else finding it raises (a ``SyntaxError`` of ``__main__.py``) is left to the run, which raises
    it again with its traceback."""
    import runpy
    try:
        runpy._get_main_module_details(runpy._Error)
    except runpy._Error as error:
        raise ImportError(str(error)) from None
    except Exception:
        pass


def end_run(exc, saved_env, to_excepthook=False):
    """Restores the environment and describes the exception (if any) as ``(name, value,
    traceback)``. With ``to_excepthook`` (a file run whose
    code replaced ``sys.excepthook``, or any file run on the process's own streams) the exception
    is handed to that hook, as python3 does, and the record's traceback is empty: the hook printed
    what it prints. On the process's own streams a ``SystemExit`` whose code is not a status has
    that code printed on ``sys.stderr``, as python3 prints it, instead, and a ``SystemExit`` there
    (or a subclass, or one the hook raised) adds a fourth item: the status python3 exits with.
    ``str()`` of the exception is called once for the value and the traceback, and not at all
    there when the hook handled it (as python3 calls it: its value is then ``""``)."""
    if saved_env:
        for key, old in saved_env.items():
            for environ in _run_environments():
                if old is _MISSING:
                    environ.pop(key, None)
                else:
                    environ[key] = old
    record = None
    if exc is not None:
        _strip_engine_frames(exc)
        status = None
        if _is_instance(exc, SystemExit):
            if to_excepthook and _process_streams:
                status = _handle_system_exit(exc)
            handled = status is not None
        else:
            if to_excepthook and _process_streams:
                # As python3's PyErr_Print: kept until the end of the program (with the frames'
                # objects, freed after the threads and atexit handlers).
                sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, _traceback_of(exc)
            try:
                handled = to_excepthook and _call_excepthook(exc)
            except SystemExit as hook_exit:
                # The hook ended the program: python3 exits as for that SystemExit (its code
                # printed when it is not a status), not with the hook's failure.
                exc = hook_exit.with_traceback(None)
                if _process_streams:
                    status = _handle_system_exit(exc)
                handled = status is not None
        name = pykernel_traceback.exception_name(exc)
        if not handled:
            # The value is the message the traceback printed: str() called once, as by python3.
            text, value = pykernel_traceback.format_exception_and_value(exc)
            record = (name, _as_printed(value), _as_printed(text))
        elif _process_streams:
            # The hook printed (or the exit status was taken): python3 calls no str() of it, and
            # a program run reads no value.
            record = (name, "", "")
        else:
            record = (name, _as_printed(pykernel_traceback.exception_value(exc)), "")
        if status is not None:
            record += (status,)
    return record


# The weak references ``keep_cell_while_used`` keeps kept cells by, by their ``id``: weak references
# to code objects compare (and hash) as their code does, and code objects compare by value, not by
# file (a cell run again, the same cell in another context), so a set kept one of two equal ones,
# and the other, held only by its own callback, was collected with it: its cell was never forgotten.
_cell_keepers = {}


def keep_cell_while_used(cells, filename, codes, code=None, namespace=None):
    """Keeps a cell's source while something still holds its code or code defined in it
    (``codes``: a function or lambda of the cell that lives on, a frame of a traceback the code
    saved, a generator, ``sys._getframe()``), for the tracebacks that may show it, also from another
    context; forgotten when the last of them is freed. A cell that defines classes (its ``code``,
    run in the ``namespace`` of its context) is also kept while one of them lives
    (``_classes_of_cell``): ``inspect.getsource`` finds a class's source in its cell (through its
    methods' code, else by its name: see ``_cell_of_class``). Forgotten at once when nothing holds
    it."""
    source = cells[filename]
    holders = list(codes)
    if code is not None:
        holders += _classes_of_cell(code, namespace)
    if not holders:
        del cells[filename]
        return
    keepers = {}  # by id, as ``_cell_keepers``

    def forget(keeper):
        _cell_keepers.pop(id(keeper), None)
        keepers.pop(id(keeper), None)
        if keepers:
            return  # other code of the cell still lives
        entry = cells.get(filename)
        # The context may have been restarted meanwhile, with a cell of the same name.
        if entry is source or (type(entry) is tuple and entry[2] == _source_lines(source)):
            del cells[filename]
            if _kept_cells.get(id(filename), (None,))[0] is filename:
                del _kept_cells[id(filename)]

    # Called as the code lets its last function of the cell go: not for its tracer to see.
    callback = forget if as_the_engine is None else types.MethodType(as_the_engine, forget)
    for holder in holders:
        keeper = weakref.ref(holder, callback)
        keepers[id(keeper)] = keeper
        _cell_keepers[id(keeper)] = keeper
    _kept_cells[id(filename)] = (filename, cells)


# A class's own ``__dict__``, ``__qualname__`` and ``__module__`` as ``type`` reads them: a
# metaclass that defines them runs no code of the context's here.
_class_dict = type.__dict__["__dict__"].__get__
_class_qualname = type.__dict__["__qualname__"].__get__
_class_module = type.__dict__["__module__"].__get__
_CO_OPTIMIZED = 0x1  # every function's code has it; a class body's (and a module's) has not


def _classes_of_cell(code, namespace):
    """The classes a cell's ``code`` defined that its context still holds: in its globals
    (``namespace``), as a value or a value's type, and the classes nested in those; known by the
    qualified names of the cell's class bodies (their ``co_qualname``) and the module they were
    defined in. A class held only where this does not look (in a list, by another module) is
    missed: its cell is then kept only while its methods are."""
    names = set()
    bodies = [code]
    while bodies:
        for constant in bodies.pop().co_consts:
            if type(constant) is types.CodeType and not constant.co_flags & _CO_OPTIMIZED:
                names.add(constant.co_qualname)
                bodies.append(constant)
    module = namespace.get("__name__")
    found = {}

    def look_at(candidates):
        for candidate in candidates:
            if (issubclass(type(candidate), type) and id(candidate) not in found
                    and _class_qualname(candidate) in names and _class_module(candidate) == module):
                found[id(candidate)] = candidate
                look_at(list(_class_dict(candidate).values()))

    for value in list(namespace.values()):
        look_at((value, type(value)))
    return list(found.values())


def _as_printed(text):
    """The text as python3's stderr writes it: a lone surrogate (which the record's UTF-8 cannot
    carry) as its backslash escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _handle_system_exit(exc):
    """What python3 does with an uncaught ``SystemExit`` as it exits (``_Py_HandleSystemExit``):
    returns the status, taken from the exception's ``code`` attribute (whatever its class and
    ``str()``): 0 for ``None``; an integer (``bool``, a subclass of ``int``: its value) as C's
    ``exit()`` takes it, its last 8 bits (one past a C ``long`` is -1: 255); for anything else
    (the exception itself when ``code`` cannot be read), 1, after ``str(code)`` and a newline
    on ``sys.stderr`` (descriptor 2 when there is none), errors ignored."""
    try:
        code = exc.code
    except BaseException:  # noqa: B036 -- python3 clears whatever reading it raised
        code = exc
    if code is None:
        return 0
    if _is_instance(code, int):
        value = int.__index__(code)  # PyLong_AsLong: the value, not the subclass's methods
        return (value if -(1 << 63) <= value < (1 << 63) else -1) & 0xFF
    stderr = sys.stderr
    try:
        if stderr is None:
            os.write(2, str(code).encode(errors="backslashreplace"))
        else:
            stderr.write(str(code))
    except BaseException:  # noqa: B036,S110 -- python3 clears what printing the code raised
        pass
    try:  # then the newline, whatever became of the code (PySys_WriteStderr)
        if stderr is None:
            os.write(2, b"\n")
        else:
            stderr.write("\n")
    except BaseException:  # noqa: B036 -- on C's stderr then, as PySys_WriteStderr falls back
        try:
            os.write(2, b"\n")
        except OSError:
            pass
    return 1


def _call_excepthook(exc):
    """Calls the program's ``sys.excepthook`` with an uncaught exception, as python3 does (a
    ``SystemExit`` it raises goes on: the program exits by it); when the hook raises anything
    else, prints what python3 prints then (``PyErr_PrintEx``): on the process's own
    streams with CPython's printer, the original exception too (returns ``True``: its stderr's
    error handler, its "lost sys.stderr" when that is closed or gone); in a context the hook's
    error with the port, leaving the exception's own traceback to the record (returns ``False``).
    With no ``sys.excepthook`` at all (deleted), prints "sys.excepthook is missing" as python3,
    then on the process's own streams the exception with CPython's printer."""
    hook = sys.__dict__.get("excepthook", _MISSING)  # PyErr_PrintEx's lookup: a hook set to None is called
    if hook is _MISSING:
        _write_stderr("sys.excepthook is missing\n")
        if _process_streams:
            _cpython_excepthook(type(exc), exc, _traceback_of(exc))
            return True
        return False
    try:
        if hook is _cpython_excepthook:
            _call_cpython_printer(exc)
        else:  # the code's: traced, as python3 calls it
            as_the_code(hook, type(exc), exc, _traceback_of(exc))
        return True
    except SystemExit:
        raise  # the hook ends the program (python3's handle_system_exit): see end_run
    except BaseException as error:  # noqa: B036 -- python3 reports any failure of the hook
        _set_traceback(error, _traceback_of(error).tb_next)  # without this function's frame
        _write_stderr("Error in sys.excepthook:\n")
        if _process_streams:
            sys.__excepthook__(type(error), error, _traceback_of(error))
            _write_stderr("\nOriginal exception was:\n")
            sys.__excepthook__(type(exc), exc, _traceback_of(exc))
            return True
        _write_stderr(pykernel_traceback.format_exception(error))
        _write_stderr("\nOriginal exception was:\n")
        return False


# What python3's printer sees of the frame it runs under at exit, where none runs: its import of
# ``io`` for each source line (PyImport_Import) calls ``builtins.__import__`` with globals
# ``{"__builtins__": builtins}``, not the engine's (see _call_cpython_printer).
_PRINTER_GLOBALS = {"__builtins__": builtins}
exec(compile("def _under_no_frame(function, *arguments):\n    return function(*arguments)\n",
             _ENGINE_FILENAME_PREFIX + "pykernel_runtime.py>", "exec"), _PRINTER_GLOBALS)
_under_no_frame = _PRINTER_GLOBALS.pop("_under_no_frame")


def _call_cpython_printer(exc):
    """CPython's ``sys.__excepthook__`` for an uncaught exception, called as python3 calls it when
    the program ends, with no Python frame under it: the engine's frames under this call are given
    back to the recursion limit for it (which decides how long a chain of exceptions the printer
    prints before it gives up: see ``pykernel_traceback._room``), the call of the code's trace
    and profile functions on (what python3's printer calls is traced: a ``__str__``, ``codecs``),
    and the frame right under it has python3's globals (``_under_no_frame``)."""
    frames = 2  # ``_under_no_frame``'s and ``as_the_code``'s calls
    frame = sys._getframe()
    while frame is not None:
        frames += 1
        frame = frame.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + frames)
    try:
        _under_no_frame(as_the_code, _cpython_excepthook, type(exc), exc, _traceback_of(exc))
    finally:
        sys.setrecursionlimit(limit)


def _write_stderr(text):
    """``PySys_WriteStderr``: on ``sys.stderr``, else (none, closed, failing) on descriptor 2."""
    try:
        sys.stderr.write(text)
    except Exception:  # noqa: BLE001 -- python3 falls back to C's stderr whatever the failure
        try:
            os.write(2, text.encode(errors="backslashreplace"))
        except OSError:
            pass


def _strip_engine_frames(exc):
    """Cuts frames of the engine's own code (the stop-signal handler, ``input``, ``KernelInput.readline``,
    ``display``) from each traceback in the exception's chain; the code's frames after them (a
    ``__repr__`` that ``display()`` called) stay, linked to the code's frame before them."""
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        previous, tb = None, _traceback_of(current)
        while tb is not None:
            following = tb.tb_next
            if tb.tb_frame.f_code.co_filename.startswith(_ENGINE_FILENAME_PREFIX):
                if previous is None:
                    _set_traceback(current, following)
                else:
                    previous.tb_next = following
            else:
                previous = tb
            tb = following
        pending.append(_cause_of(current))
        pending.append(_context_of(current))
        if _is_instance(current, BaseExceptionGroup):
            pending.extend(_members_of(current))
