import Synchronization

/// Which standard stream a piece of output was written to.
public enum OutputStreamName: String, Sendable, Hashable {
    case stdout, stderr
}

/// Output of a run, delivered while it runs. Small writes are coalesced into one chunk.
public struct OutputChunk: Sendable, Hashable {
    /// The stream it was written to.
    public let stream: OutputStreamName
    /// What was written, decoded as UTF-8 (bytes that are not become U+FFFD; a character split
    /// between writes is delivered whole, in the later chunk).
    public let text: String

    /// A chunk of `text` written to `stream`.
    public init(stream: OutputStreamName, text: String) {
        self.stream = stream
        self.text = text
    }
}

/// An exception raised by user code, as CPython itself would print it.
public struct ErrorRecord: Sendable, Hashable {
    /// The exception type as the standard traceback names it (`ZeroDivisionError`,
    /// `json.decoder.JSONDecodeError`).
    public let name: String
    /// `str()` of the exception.
    public let value: String
    /// The full text `python3 file.py` prints for it, with the cell's pseudo-filename (`<cell-N>`).
    public let traceback: String
    /// For a `SystemExit` (or a subclass) that ended a program run on the process's own streams
    /// (``KernelConfiguration/usesProcessStandardStreams``, `pykernel run`): the status python3
    /// exits with for it, taken from its `code` as python3 takes it (what its `str()` or `value`
    /// says does not matter). `nil` otherwise; never part of the protocol's record.
    public let exitStatus: Int32?
    /// How many bytes were cut from the end of ``value``, longer than the run's output limit
    /// (`max_output_bytes`): its start is kept. 0 when nothing was.
    public let valueOmittedBytes: Int
    /// How many bytes were cut from the middle of ``traceback``, longer than the run's output
    /// limit: its head and tail are kept (the exception's line last), joined by a line saying how
    /// many bytes were left out. 0 when nothing was.
    public let tracebackOmittedBytes: Int

    /// Whether ``value`` or ``traceback`` was cut at the run's output limit.
    public var isTruncated: Bool { valueOmittedBytes > 0 || tracebackOmittedBytes > 0 }

    /// An error record as the engine makes it from an exception the code raised.
    public init(
        name: String, value: String, traceback: String, exitStatus: Int32? = nil, valueOmittedBytes: Int = 0, tracebackOmittedBytes: Int = 0
    ) {
        self.name = name
        self.value = value
        self.traceback = traceback
        self.exitStatus = exitStatus
        self.valueOmittedBytes = valueOmittedBytes
        self.tracebackOmittedBytes = tracebackOmittedBytes
    }
}

/// A rich result of a run, as Jupyter's `display_data`/`execute_result`: the value of the cell's
/// last expression (``isMainResult``) or an object passed to `display()`.
public struct RichResult: Sendable, Hashable, CustomReflectable {
    /// Whether this is the value of the run's last expression (else a `display()`ed object).
    public let isMainResult: Bool
    /// The representations, kept as the `text/plain` string alone when that is the whole bundle
    /// (a value shown by its `repr`, the usual main result): no dictionary to build, hash, copy
    /// and free on that path. Always in this form when it applies (see ``init(isMainResult:data:metadataJSON:chartJSON:)``),
    /// so equal bundles are stored alike.
    private let bundle: Bundle
    /// The representation's metadata as JSON text (`{}` when there is none).
    public let metadataJSON: String
    /// The chart record (issue 12's `Chart`) as JSON text, or `nil`.
    public let chartJSON: String?

    private enum Bundle: Sendable, Hashable {
        case textOnly(String)
        case representations([String: String])
    }

    /// A result of representations `data` (MIME type → representation, `text/plain` among them),
    /// their metadata and chart record as JSON text.
    public init(isMainResult: Bool, data: [String: String], metadataJSON: String = "{}", chartJSON: String? = nil) {
        self.isMainResult = isMainResult
        if data.count == 1, let text = data["text/plain"] {
            bundle = .textOnly(text)
        } else {
            bundle = .representations(data)
        }
        self.metadataJSON = metadataJSON
        self.chartJSON = chartJSON
    }

    /// A result whose bundle is its `text/plain` representation alone, without metadata or chart.
    package init(isMainResult: Bool, text: String) {
        self.isMainResult = isMainResult
        bundle = .textOnly(text)
        metadataJSON = "{}"
        chartJSON = nil
    }

    /// MIME type → representation. Always holds `text/plain`; binary formats (`image/png`,
    /// `image/jpeg`, `application/pdf`) are base64; `application/json` (and every `+json` type) is
    /// JSON text, as Python's `json.dumps` writes it (a process context's result carries the same).
    public var data: [String: String] {
        switch bundle {
        case .textOnly(let text): ["text/plain": text]
        case .representations(let data): data
        }
    }

    /// The `text/plain` representation (the value's `repr`).
    public var text: String? {
        switch bundle {
        case .textOnly(let text): text
        case .representations(let data): data["text/plain"]
        }
    }

    /// The `text/plain` representation when it is the bundle's only one, else `nil`.
    package var textOnly: String? {
        if case .textOnly(let text) = bundle { text } else { nil }
    }

    /// Described as its public properties (`data`, not the stored form).
    public var customMirror: Mirror {
        Mirror(self, children: ["isMainResult": isMainResult, "data": data, "metadataJSON": metadataJSON, "chartJSON": chartJSON as Any], displayStyle: .struct)
    }

    /// A rough size in bytes (for output accounting).
    var byteCount: Int {
        switch bundle {
        case .textOnly(let text): metadataJSON.utf8.count + (chartJSON?.utf8.count ?? 0) + 10 + text.utf8.count
        case .representations(let data):
            data.reduce(metadataJSON.utf8.count + (chartJSON?.utf8.count ?? 0)) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        }
    }
}

/// How a run ended.
public enum ExecutionStatus: String, Sendable, Hashable {
    /// The code ran to its end.
    case ok
    /// The code raised; see ``ExecutionResult/error``.
    case error
    /// The run exceeded its timeout and was stopped (its context keeps its state).
    case timeout
    /// The run was interrupted (``KernelManager/interrupt(_:)``); its context keeps its state.
    case interrupted
    /// Process contexts only: the worker process died during the run (a signal, the OOM killer);
    /// the context's state is lost and it is dead until restarted.
    case crashed
}

/// What a run produced.
public struct ExecutionResult: Sendable, Hashable {
    /// How the run ended.
    public let status: ExecutionStatus
    /// What was written to stdout: all of it, or past the run's output limit its first and last
    /// halves joined (the event stream still carried every byte).
    public let stdout: String
    /// What was written to stderr, capped the same way.
    public let stderr: String
    /// How many bytes of stdout were cut between the kept head and tail (0: nothing cut).
    public let stdoutOmittedBytes: Int
    /// How many bytes of stderr were cut between the kept head and tail (0: nothing cut).
    public let stderrOmittedBytes: Int
    /// The bytes of ``stdout`` before the cut: its kept head (all of it when nothing was cut).
    /// The head can be 1 to 3 bytes shorter than half the limit (cut at a character boundary),
    /// which the joined text does not tell: a front that marks the cut (`pykernel mcp`) puts its
    /// mark here.
    public let stdoutHeadBytes: Int
    /// The bytes of ``stderr`` before the cut, as ``stdoutHeadBytes``.
    public let stderrHeadBytes: Int
    /// Whether ``stdout`` was cut at the output limit.
    public var stdoutTruncated: Bool { stdoutOmittedBytes > 0 }
    /// Whether ``stderr`` was cut at the output limit.
    public var stderrTruncated: Bool { stderrOmittedBytes > 0 }
    /// The exception the code raised, or `nil`.
    public let error: ErrorRecord?
    /// The context's execution counter for this run (1 for its first run).
    public let executionCount: Int
    /// How long the code ran (from its start, not counting time queued behind other runs).
    public let duration: Duration
    /// The run's rich results in the order they were produced (`display()`ed objects, then the
    /// last expression's value, the main result).
    public let results: [RichResult]
    /// The main result (the value of the run's last expression), if any.
    public var mainResult: RichResult? { results.last(where: \.isMainResult) }

    /// A result made elsewhere (a process context's worker answered the run).
    /// - Parameters:
    ///   - stdoutHeadBytes: The bytes of `stdout` before its cut; `nil`: all of them (nothing cut).
    ///   - stderrHeadBytes: The bytes of `stderr` before its cut; `nil`: all of them (nothing cut).
    public init(
        status: ExecutionStatus, stdout: String, stderr: String, stdoutOmittedBytes: Int = 0, stderrOmittedBytes: Int = 0,
        stdoutHeadBytes: Int? = nil, stderrHeadBytes: Int? = nil,
        error: ErrorRecord?, executionCount: Int, duration: Duration, results: [RichResult] = []
    ) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutOmittedBytes = stdoutOmittedBytes
        self.stderrOmittedBytes = stderrOmittedBytes
        self.stdoutHeadBytes = stdoutHeadBytes ?? stdout.utf8.count
        self.stderrHeadBytes = stderrHeadBytes ?? stderr.utf8.count
        self.error = error
        self.executionCount = executionCount
        self.duration = duration
        self.results = results
    }
}

/// A run's code waits for a line of input: it called `input(prompt)`, `getpass.getpass(prompt)`
/// or read `sys.stdin`, in a run submitted with `allowStdin`. Answer it with
/// ``KernelManager/answerInput(_:with:)``; the code waits (without the GIL) until then, or until
/// the run is stopped (timeout, interrupt, deletion of its context).
///
/// One request of a run is open at a time: a second read (another Python thread of the run)
/// waits until the open one is answered, then gets a request of its own.
public struct InputRequest: Sendable, Hashable {
    /// The prompt the code passed (`input`'s, `getpass`'s), `""` for reads of `sys.stdin`. It is
    /// not written to stdout.
    public let prompt: String
    /// Whether the answer is a secret (`getpass`): a front should not show it as it is typed.
    public let password: Bool
    /// Which request of the engine this is: an answer to a request no longer open is refused.
    package let serial: UInt64

    /// A request for input; `serial` tells the one who answers which request it is.
    package init(prompt: String, password: Bool, serial: UInt64) {
        self.prompt = prompt
        self.password = password
        self.serial = serial
    }
}

/// The answer to an ``InputRequest``.
public enum InputReply: Sendable, Hashable {
    /// A line of input: `input()` returns it as it is; `sys.stdin.readline()` gets it plus `"\n"`.
    case value(String)
    /// End of file: `input()` and `getpass()` raise `EOFError`, `sys.stdin` reads return what was
    /// read so far (`""` for a `readline()`).
    case endOfFile
}

/// One event of a run: output as it is written and rich results in order with it, then the result.
public enum ExecutionEvent: Sendable, Hashable {
    /// Output written to stdout or stderr (by Python, or to the descriptors with capture on).
    case output(OutputChunk)
    /// A rich result (the last expression's value or a `display()`ed object), in order with output.
    case result(RichResult)
    /// The code waits for input (runs submitted with `allowStdin` only), in order with output.
    case inputRequest(InputRequest)
    /// The run's end and result: the last event.
    case completed(ExecutionResult)
}

/// For a server that answers runs from the thread where they end (no task hop per run): how it
/// takes a run's events without iterating an execution (``KernelManager/run(_:in:environment:timeout:outputLimit:allowStdin:consumer:)``).
///
/// - `stream` is called once, when events the run produces before its end (output, a `display()`ed
///   result, a request for input) are due to be sent (output at the end of its coalescing window
///   or when flushed, other events at once), on the thread that made them due or the engine's
///   timer thread, under the run's output lock: it must only start a task that iterates the
///   execution it is given. A main result waits for the end (or for an event after it). A run
///   that ends before then needs no task.
/// - `end` is called when the run ends while no task iterates it, or while that task waits for
///   the next event (so it has handled every event it took) or has not taken any yet (started,
///   not yet scheduled: it has nothing to send before the end), on the thread where the run ended
///   (the interpreter thread with the GIL held, the watchdog, a caller deleting the context), with
///   every event not yet taken, the last one `.completed`, or the error the run failed with (it
///   could not start); the task's iteration then ends without it. Otherwise the task gets the end
///   as usual and `end` is never called. It must hand the events on quickly (queue them for a
///   writer), never wait for the engine.
package struct DirectRunConsumer: Sendable {
    package let end: @Sendable (Result<[ExecutionEvent], KernelError>) -> Void
    package let stream: @Sendable (Execution) -> Void

    package init(
        end: @escaping @Sendable (Result<[ExecutionEvent], KernelError>) -> Void, stream: @escaping @Sendable (Execution) -> Void
    ) {
        self.end = end
        self.stream = stream
    }
}

/// A submitted run: an asynchronous sequence of its events, ending with ``ExecutionEvent/completed(_:)``.
///
/// Iterate it to receive output as it is written; the run's writer waits while the unread output
/// reaches the manager's buffer limit, so a slow reader slows the code down instead of growing memory.
/// Dropping the execution and its iterators before the end discards the rest of the output (the run
/// goes on; a wait for input gets end of file). Cancelling the task that iterates it withdraws the
/// run if it is still queued: it never runs, and the iterator yields its result, status
/// `interrupted` with execution count 0. A run in progress is not stopped by cancellation (use
/// ``KernelManager/interrupt(_:)``).
/// It throws a ``KernelError`` when the run could not start (its context was deleted while it was
/// queued, its working directory is gone — `invalid_cwd`, `field` `context` —, the interpreter is
/// busy, the manager shut down).
public struct Execution: AsyncSequence, Sendable {
    public typealias Element = ExecutionEvent
    private let reader: Reader

    init(output: RunOutput) { reader = Reader(output) }

    /// Whether the run has ended (its result is recorded, whether or not it was read yet).
    package var hasEnded: Bool { reader.hasEnded }

    /// The run's output (its identity in the engine).
    var output: RunOutput { reader.output }

    /// An iterator over the run's events (iterators of one execution share them: each event is
    /// taken by one).
    public func makeAsyncIterator() -> Iterator { Iterator(reader: reader) }

    /// For callers that answer many quick runs: when the run ends within `budget` (busy-waiting,
    /// so keep it to microseconds), returns all its events at once (ending with `.completed`)
    /// without suspending; `nil`, with nothing consumed, when it is still running.
    ///
    /// It spins: call it from a thread you own (a server's request reader), never from a task on
    /// Swift's cooperative pool; there, iterate the execution instead.
    /// - Throws: ``KernelError`` when the run could not start.
    public func eventsIfFinished(within budget: Duration) throws(KernelError) -> [ExecutionEvent]? {
        try reader.takeAllIfFinished(within: budget)
    }

    /// Waits for the run to end and returns its result, discarding streamed output
    /// (the result still holds stdout and stderr up to the output limit). Called again, or
    /// after the events were iterated to the end, it returns the same result (or throws the same
    /// error). It skips requests for input too: a run submitted with `allowStdin` whose code asks
    /// then waits for ``KernelManager/answerInput(_:with:)`` or a stop; iterate the events to see them.
    public func result() async throws -> ExecutionResult {
        for try await event in self {
            if case .completed(let result) = event { return result }
        }
        guard let outcome = reader.outcome else {
            throw KernelError(.shutDown, "the run ended without a result")  // not reached: every run ends with one
        }
        return try outcome.get()
    }

    /// Takes the run's events in order.
    public struct Iterator: AsyncIteratorProtocol {
        fileprivate let reader: Reader

        /// The next event, waiting for it; `nil` after ``ExecutionEvent/completed(_:)``.
        /// - Throws: ``KernelError`` when the run could not start.
        public func next() async throws -> ExecutionEvent? { try await reader.next() }
    }

    /// Shared by an execution and its iterators: when the last of them is gone before the result
    /// was read, the rest of the output is discarded so the run never waits for a reader.
    fileprivate final class Reader: Sendable {
        let output: RunOutput
        /// Whether the end (the result, or the failure) was taken. Atomic: copies of the execution
        /// and its iterators may be used from different tasks (one at a time, as any iterator).
        private let done = Atomic<Bool>(false)
        /// The end once taken, for ``Execution/result()`` asked again.
        private let end = Mutex<Result<ExecutionResult, KernelError>?>(nil)

        var outcome: Result<ExecutionResult, KernelError>? { end.withLock { $0 } }

        var hasEnded: Bool { output.hasEnded }

        init(_ output: RunOutput) { self.output = output }

        func takeAllIfFinished(within budget: Duration) throws(KernelError) -> [ExecutionEvent]? {
            guard !done.load(ordering: .acquiring), let outcome = output.takeAllIfFinished(within: budget) else { return nil }
            switch outcome {
            case .success(let events):
                if case .completed(let result)? = events.last { keep(.success(result)) }
            case .failure(let error):
                keep(.failure(error))
            }
            done.store(true, ordering: .releasing)
            return try outcome.get()
        }

        func next() async throws -> ExecutionEvent? {
            guard !done.load(ordering: .acquiring) else { return nil }
            let event: ExecutionEvent?
            do {
                event = try await withTaskCancellationHandler {
                    try await output.nextEvent()
                } onCancel: {
                    output.readerCancelled()
                }
            } catch {
                if let error = error as? KernelError { keep(.failure(error)) }
                done.store(true, ordering: .releasing)
                throw error
            }
            switch event {
            case .completed(let result)?:
                keep(.success(result))
                done.store(true, ordering: .releasing)
            case nil: done.store(true, ordering: .releasing)
            case .output?, .result?, .inputRequest?: break
            }
            return event
        }

        private func keep(_ outcome: Result<ExecutionResult, KernelError>) {
            end.withLock { $0 = outcome }
        }

        deinit {
            if !done.load(ordering: .acquiring) { output.abandon() }
        }
    }
}
