import Dispatch
import JSONRPC
import PyKernelSupport

/// What a forwarded run produces, in order: the worker's notifications about it, then one end.
public enum RelayEvent: Sendable {
    /// A notification (`code.output`, ...) without its `request_id`.
    case notification(String, JSONObject)
    /// The run's result (the worker's, or one the server wrote when the worker was ended).
    case result(JSONValue)
    /// A JSON-RPC error object answering the run.
    case error(code: Int, message: String, data: JSONValue?)
}

/// Takes a run's events on the thread that produces each (see ``RunRelay/init(outputLimit:limit:consumer:withdraw:)``).
public struct RelayConsumer: Sendable {
    /// Takes each event, in order.
    let take: @Sendable (RunRelay, RelayEvent) -> Void
    /// Called when the worker's reader has handled every line it has read so far (the run goes
    /// on): a consumer that keeps notifications, to send them in one write with what follows in
    /// the same read (the response, usually), sends what it keeps now.
    let caughtUp: @Sendable () -> Void
    /// Called once when the run is asked to stop (``RunRelay/requestStop()``), on the thread that
    /// asks: a consumer that waits for room lets up to ``RunRelay/roomAfterStop`` more bytes
    /// pass its bound from then on, and wakes a wait in progress.
    let stopRequested: @Sendable () -> Void

    /// A consumer of a run's events: `take` gets each in order, `caughtUp` when the worker's
    /// reader has handled every line read so far, `stopRequested` when the run is asked to stop.
    public init(take: @escaping @Sendable (RunRelay, RelayEvent) -> Void, caughtUp: @escaping @Sendable () -> Void,
                stopRequested: @escaping @Sendable () -> Void) {
        self.take = take
        self.caughtUp = caughtUp
        self.stopRequested = stopRequested
    }
}

/// One run's events, from a worker's reader thread to whoever answers the client: either queued
/// for tasks (``next()``), bounded, or handed to a consumer on the producing thread.
///
/// Queued, the reader thread waits while more than `limit` bytes of notifications are unread, so a
/// client that reads slowly slows the worker down (its output pipe fills) instead of growing
/// memory; a reader that goes away (``abandon()``) or a worker that was killed
/// (``releaseProducer()``) lets it go. Handed over, the consumer's own waits (for room in the
/// server's output) do the same.
///
/// A run asked to stop (``requestStop()``: its timeout reached, or an interrupt sent) may pass
/// that bound by ``roomAfterStop`` bytes: the worker's answer (and its answer to the interrupt)
/// comes after the output it had produced when it stopped, so reading that far tells a worker that
/// stopped from one that did not without waiting for the reader (else a slow reader made a worker
/// that had stopped look stuck: killed at the grace period's end, its context's state lost).
public final class RunRelay: @unchecked Sendable {  // every field is guarded by `lock`
    /// Bytes of notifications a run asked to stop may be ahead of its reader beyond the bound.
    /// What a worker that honours the stop still writes before its answer was produced before the
    /// stop, in the worker's bounded queues: its protocol output's stream lane (8 MiB), the pipe
    /// (256 KiB), its engine's unread output of the run (1 MiB) and a chunk being handed out
    /// (at most 1 MiB) — about 10.25 MiB of protocol lines. (A queued relay counts their text; a
    /// consumer through `pykernel serve` its own lines, the client's request id in place of the
    /// worker's.) A worker that goes on writing is held at this much more and killed at the grace
    /// period's end.
    public static let roomAfterStop = 16 << 20
    private let lock = ConditionLock()
    /// Takes the events instead of the queue (`nil`: queued for ``next()``).
    private let consumer: RelayConsumer?
    /// Held while an event is handed to `consumer`, so that it gets them one at a time and in
    /// order (the end comes from another thread when a worker dies or a context is deleted).
    private let handing = ConditionLock()
    /// The notifications not read yet (queued relays).
    private var events: [RelayEvent] = []
    private var head = 0
    private var bytes = 0
    private var ended = false
    /// The run's answer, once it came (queued relays): ``next()`` returns it to every reader after
    /// the notifications.
    private var answer: RelayEvent?
    /// Tasks waiting in ``next()`` (several when several tasks read one run): a notification
    /// goes to the first, the answer to all.
    private var waiters: [CheckedContinuation<RelayEvent, Never>] = []
    /// Nobody reads the run any more (see ``abandon()``).
    private var abandoned = false
    /// The run's worker was killed: its reader thread no longer waits for room (see ``releaseProducer()``).
    private var producerReleased = false
    /// The run was asked to stop: the bound of unread notifications is `limit` plus ``roomAfterStop``.
    private var stopRequested = false
    /// The worker asked for input (a `code.input_request` was relayed): an abandoned run's open
    /// request is answered end of file.
    private var inputRequested = false
    /// The last request for input relayed has not been answered yet (``answerInput(_:)``): a
    /// cancelled reader's (``readerCancelled()``) is answered end of file, and an answer to it
    /// is taken though the worker ends before acknowledging it.
    private var inputOpen = false
    /// An end of file is due to the worker once the run's request id there is known (``bind(to:requestID:)``).
    private var endOfFileOwed = false
    private let limit: Int
    /// Withdraws the run if it has not been sent to its worker yet (``readerCancelled()``).
    private let withdraw: (@Sendable (RunRelay) -> Void)?
    /// Output kept for a result the server writes itself (the worker's own cap).
    private var stdout: HeadTailBuffer
    private var stderr: HeadTailBuffer
    /// The rich results of `code.result` notifications, for a result the server writes itself.
    private var results: [JSONValue] = []
    /// The worker that runs the run and the run's request id there (for `code.input`).
    private var target: (worker: Worker, requestID: Int64)?

    /// - Parameters:
    ///   - consumer: Takes every event on the thread that produces it (a worker's reader
    ///     thread; the thread that ends the run when its worker ended or its context was deleted),
    ///     in order, each once: notifications, then the end. It may block (for room in an output);
    ///     it must not call back into this relay but for ``answerInput(_:)`` later. `nil`: events are
    ///     queued for ``next()``.
    ///   - withdraw: Called by ``readerCancelled()`` (with this relay) while the run is not
    ///     answered: withdraws it if it still waits for its turn.
    init(outputLimit: Int, limit: Int = 1 << 20, consumer: RelayConsumer? = nil, withdraw: (@Sendable (RunRelay) -> Void)? = nil) {
        self.limit = limit
        self.consumer = consumer
        self.withdraw = withdraw
        self.stdout = HeadTailBuffer(limit: outputLimit)
        self.stderr = HeadTailBuffer(limit: outputLimit)
    }

    /// Whether the run has been answered.
    var isFinished: Bool { lock.withLock { ended } }

    /// Whether the events are queued for ``next()`` (no consumer).
    var isQueued: Bool { consumer == nil }

    /// Queues a notification (waits while the unread ones hold more than the limit, plus
    /// ``roomAfterStop`` once the run was asked to stop, unless nobody reads any more or the
    /// worker was killed).
    func push(_ method: String, _ params: JSONObject) {
        if let consumer {
            handing.withLock {
                let open = lock.withLock { () -> Bool in
                    guard !ended else { return false }
                    keep(method, params)
                    if method == "code.input_request" { inputOpen = true }
                    return true
                }
                if open { consumer.take(self, .notification(method, params)) }
            }
            return
        }
        let size = params["text"]?.stringValue?.utf8.count ?? 64
        lock.lock()
        while bytes > (stopRequested ? limit + Self.roomAfterStop : limit) && !ended && !abandoned && !producerReleased { lock.wait() }
        guard !ended else { return lock.unlock() }
        keep(method, params)
        let isInputRequest = method == "code.input_request"
        if abandoned {
            // Nobody reads the run: its request for input gets end of file, as a namespace run's does.
            let target = isInputRequest ? endOfFileTargetLocked() : nil
            lock.unlock()
            if let target { Self.sendEndOfFile(to: target) }
            return
        }
        if isInputRequest { (inputRequested, inputOpen) = (true, true) }
        let event = RelayEvent.notification(method, params)
        deliver(event, size: size)
    }

    /// Answers the run (the first answer wins; later ones are ignored).
    func finish(_ event: RelayEvent) {
        if let consumer {
            handing.withLock {
                let first = lock.withLock { () -> Bool in
                    defer { ended = true }
                    return !ended
                }
                if first { consumer.take(self, event) }
            }
            return
        }
        lock.lock()
        guard !ended else { return lock.unlock() }
        ended = true
        answerLocked(event)
    }

    /// Answers the run with a result the server writes itself, made by `make` from the output
    /// and rich results kept so far (see ``keptOutput()``) in the same step as the answer: no
    /// notification the worker's reader pushes meanwhile falls between what the result keeps and
    /// the end of what was notified (the result's `stdout` ends where the notifications end). The
    /// first answer wins: nothing is made when the run was answered already.
    func finish(resultFrom make: (_ stdout: HeadTailBuffer, _ stderr: HeadTailBuffer, _ results: [JSONValue]) -> RelayEvent) {
        if let consumer {
            handing.withLock {
                let event = lock.withLock { () -> RelayEvent? in
                    guard !ended else { return nil }
                    ended = true
                    return make(stdout, stderr, results)
                }
                if let event { consumer.take(self, event) }
            }
            return
        }
        lock.lock()
        guard !ended else { return lock.unlock() }
        ended = true
        answerLocked(make(stdout, stderr, results))
    }

    /// Records the answer of a queued relay and hands it to every task waiting (lock held; released).
    private func answerLocked(_ event: RelayEvent) {
        answer = event
        let waiting = waiters
        waiters = []
        lock.broadcast()  // a reader thread waiting for room gives up
        lock.unlock()
        for waiter in waiting { waiter.resume(returning: event) }
    }

    /// The worker's reader has handled every line it has read (see ``RelayConsumer/caughtUp``);
    /// nothing for a queued relay or a run answered already.
    func caughtUp() {
        guard let consumer else { return }
        handing.withLock {
            if !lock.withLock({ ended }) { consumer.caughtUp() }
        }
    }

    /// Keeps a `code.output` notification's text and a `code.result` notification's result for
    /// a result the server writes. Lock held.
    private func keep(_ method: String, _ params: JSONObject) {
        if method == "code.output", let text = params["text"]?.stringValue {
            if params["stream"]?.stringValue == "stderr" { stderr.append(text) } else { stdout.append(text) }
        } else if method == "code.result", let result = params["result"] {
            results.append(result)
        }
    }

    /// Records where the run was sent (`nil`: the worker had ended).
    func bind(to worker: Worker, requestID: Int64?) {
        let owed = lock.withLock { () -> (worker: Worker, requestID: Int64)? in
            target = requestID.map { (worker, $0) }
            guard endOfFileOwed, !ended, let target else { return nil }
            endOfFileOwed = false
            return target
        }
        if let owed { Self.sendEndOfFile(to: owed) }
    }

    /// The reader of a queued relay is gone (its ``ContextRun`` was dropped before the end): the
    /// notifications queued and later ones are dropped (the worker's reader never waits for room
    /// again), and the run's request for input, open now or later, is answered end of file, as a
    /// namespace run's is. The run goes on; its answer is still kept.
    func abandon() {
        guard consumer == nil else { return }
        lock.lock()
        guard !abandoned else { return lock.unlock() }
        abandoned = true
        events.removeAll()
        head = 0
        bytes = 0
        lock.broadcast()
        // A request already answered is refused by the worker (`not_waiting_for_input`), harmlessly.
        let target = inputRequested && !ended ? endOfFileTargetLocked() : nil
        lock.unlock()
        if let target { Self.sendEndOfFile(to: target) }
    }

    /// The task reading a queued relay was cancelled: the run is withdrawn if it has not been
    /// sent to its worker yet (it is then answered `interrupted` and never runs); a run sent
    /// already goes on, and its request for input open now is answered end of file, as a
    /// namespace run's is (nobody will answer it: the code would wait until its timeout, and the
    /// context's later runs with it).
    func readerCancelled() {
        guard let withdraw, !isFinished else { return }
        withdraw(self)
        let target = lock.withLock { () -> (worker: Worker, requestID: Int64)? in
            guard inputOpen, !ended else { return nil }
            inputOpen = false
            return endOfFileTargetLocked()
        }
        if let target { Self.sendEndOfFile(to: target) }
    }

    /// The run was asked to stop (its timeout has come, or an interrupt was sent to its worker):
    /// its notifications may pass the bound of unread output by ``roomAfterStop``, so that the
    /// worker's reader reaches the answer of a worker that stopped it whether or not the run is
    /// read (the reader thread waiting for room is woken; a consumer is told). Once per run.
    func requestStop() {
        let first = lock.withLock { () -> Bool in
            guard !stopRequested, !ended else { return false }
            stopRequested = true
            lock.broadcast()
            return true
        }
        if first { consumer?.stopRequested() }
    }

    /// The run's worker was killed: the worker's reader thread no longer waits for room in the
    /// queue, so that it reaches the worker's exit, which answers the run (what is left of the
    /// output queues past the limit; the worker writes no more).
    func releaseProducer() {
        lock.withLock {
            producerReleased = true
            lock.broadcast()
        }
    }

    /// Where an end of file for the run's open request goes, or `nil` (then owed until the run is
    /// bound to its worker). Lock held.
    private func endOfFileTargetLocked() -> (worker: Worker, requestID: Int64)? {
        guard let target else {
            endOfFileOwed = true
            return nil
        }
        return target
    }

    /// Answers the worker's open request for input with end of file, off the calling thread (a
    /// worker's reader thread must never wait for room in that worker's input).
    private static func sendEndOfFile(to target: (worker: Worker, requestID: Int64)) {
        DispatchQueue.global().async {
            target.worker.sendIgnoringReply("code.input", ["request_id": .integer(target.requestID), "eof": true])
        }
    }

    /// Forwards an answer to the run's open request for input (`code.input` with `fields`,
    /// `{value}` or `{eof: true}`) to its worker; returns the worker's answer (`.result` or
    /// `.error`, e.g. `not_waiting_for_input`).
    public func answerInput(_ fields: JSONObject) async -> RelayEvent {
        await withCheckedContinuation { continuation in
            if !answerInput(fields, reply: { continuation.resume(returning: $0) }) {
                continuation.resume(returning: Self.notWaitingForInput)
            }
        }
    }

    /// Forwards an answer to the run's open request for input as ``answerInput(_:)`` does, never
    /// waiting, and hands the worker's answer to `reply` on the thread that reads the worker, as
    /// it reads it: before the run's later events (its result, when the code ends right after
    /// reading the answer), so a response written there precedes the run's.
    /// An answer to a request open when it was read, whose worker is killed before it acknowledges
    /// it (its context deleted, the server shutting down, read right after the answer), is taken
    /// (`{}`), as a namespace context's run takes it before such a stop.
    /// - Returns: `false` (and `reply` is never called) when the run has ended or its worker is gone.
    public func answerInput(_ fields: JSONObject, reply: @escaping @Sendable (RelayEvent) -> Void) -> Bool {
        guard let (worker, id, wasOpen) = lock.withLock({ () -> (Worker, Int64, Bool)? in
            let wasOpen = inputOpen
            inputOpen = false
            return ended ? nil : target.map { ($0.worker, $0.requestID, wasOpen) }
        }) else { return false }
        var params = fields
        params["request_id"] = .integer(id)
        let sent = worker.send("code.input", params, Worker.Pending(
            notification: { _, _ in },
            reply: { answer in
                switch answer {
                case .result(let result):
                    reply(.result(result))
                case .error(let error):
                    reply(.error(code: error["code"]?.intValue ?? -32603, message: error["message"]?.stringValue ?? "The worker failed.",
                                 data: error["data"]))
                case .ended:
                    reply(wasOpen ? .result(.object([:])) : Self.notWaitingForInput)
                }
            }))
        return sent != nil
    }

    /// The answer to a `code.input` for a run that no longer waits for input.
    private static let notWaitingForInput = RelayEvent.error(
        code: -32602, message: "The run is not waiting for input (it was answered already, or has ended).",
        data: ["reason": "not_waiting_for_input", "field": "request_id"])

    /// The output and rich results kept so far, for a result the server writes.
    func keptOutput() -> (stdout: HeadTailBuffer, stderr: HeadTailBuffer, results: [JSONValue]) {
        lock.withLock { (stdout, stderr, results) }
    }

    /// Hands a notification to the first task waiting, else queues it. Called with the lock
    /// held; releases it.
    private func deliver(_ event: RelayEvent, size: Int) {
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            lock.unlock()
            waiter.resume(returning: event)
            return
        }
        events.append(event)
        bytes += size
        lock.unlock()
    }

    /// The next event; the run's answer is the last, and once it came every later call returns
    /// it again (several tasks may read one relay: each notification goes to one of them, the
    /// answer to all). Only for a relay without a consumer.
    public func next() async -> RelayEvent {
        await withCheckedContinuation { continuation in
            lock.lock()
            if head < events.count {
                let event = events[head]
                head += 1
                if case .notification(_, let params) = event { bytes -= params["text"]?.stringValue?.utf8.count ?? 64 }
                if head == events.count {
                    events.removeAll(keepingCapacity: true)
                    head = 0
                }
                lock.broadcast()
                lock.unlock()
                continuation.resume(returning: event)
            } else if let answer {
                lock.unlock()
                continuation.resume(returning: answer)
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }
}
