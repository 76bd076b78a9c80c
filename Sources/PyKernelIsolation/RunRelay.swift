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

/// Takes a run's events on the thread that produces each (see ``RunRelay/init(outputLimit:limit:consumer:)``).
public struct RelayConsumer: Sendable {
    /// Takes each event, in order.
    let take: @Sendable (RunRelay, RelayEvent) -> Void
    /// Called when the worker's reader has handled every line it has read so far (the run goes
    /// on): a consumer that keeps notifications, to send them in one write with what follows in
    /// the same read (the response, usually), sends what it keeps now.
    let caughtUp: @Sendable () -> Void

    public init(take: @escaping @Sendable (RunRelay, RelayEvent) -> Void, caughtUp: @escaping @Sendable () -> Void) {
        self.take = take
        self.caughtUp = caughtUp
    }
}

/// One run's events, from a worker's reader thread to whoever answers the client: either queued
/// for a task (``next()``), bounded, or handed to a consumer on the producing thread.
///
/// Queued, the reader thread waits while more than `limit` bytes of notifications are unread, so a
/// client that reads slowly slows the worker down (its output pipe fills) instead of growing
/// memory. Handed over, the consumer's own waits (for room in the server's output) do the same.
public final class RunRelay: @unchecked Sendable {  // every field is guarded by `lock`
    private let lock = ConditionLock()
    /// Takes the events instead of the queue (`nil`: queued for ``next()``).
    private let consumer: RelayConsumer?
    /// Held while an event is handed to `consumer`, so that it gets them one at a time and in
    /// order (the end comes from another thread when a worker dies or a context is deleted).
    private let handing = ConditionLock()
    private var events: [RelayEvent] = []
    private var head = 0
    private var bytes = 0
    private var ended = false
    private var waiter: CheckedContinuation<RelayEvent, Never>?
    private let limit: Int
    /// Output kept for a result the server writes itself (the worker's own cap).
    private var stdout: HeadTailBuffer
    private var stderr: HeadTailBuffer
    /// The rich results of `code.result` notifications, for a result the server writes itself.
    private var results: [JSONValue] = []
    /// The worker that runs the run and the run's request id there (for `code.input`).
    private var target: (worker: Worker, requestID: Int64)?

    /// - Parameter consumer: Takes every event on the thread that produces it (a worker's reader
    ///   thread; the thread that ends the run when its worker ended or its context was deleted),
    ///   in order, each once: notifications, then the end. It may block (for room in an output);
    ///   it must not call back into this relay but for ``answerInput(_:)`` later. `nil`: events are
    ///   queued for ``next()``.
    init(outputLimit: Int, limit: Int = 1 << 20, consumer: RelayConsumer? = nil) {
        self.limit = limit
        self.consumer = consumer
        self.stdout = HeadTailBuffer(limit: outputLimit)
        self.stderr = HeadTailBuffer(limit: outputLimit)
    }

    /// Whether the run has been answered.
    var isFinished: Bool { lock.withLock { ended } }

    /// Queues a notification (waits while the unread ones hold more than the limit).
    func push(_ method: String, _ params: JSONObject) {
        if let consumer {
            handing.withLock {
                let open = lock.withLock { () -> Bool in
                    guard !ended else { return false }
                    keep(method, params)
                    return true
                }
                if open { consumer.take(self, .notification(method, params)) }
            }
            return
        }
        let size = params["text"]?.stringValue?.utf8.count ?? 64
        lock.lock()
        while bytes > limit && !ended { lock.wait() }
        guard !ended else { return lock.unlock() }
        keep(method, params)
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
        lock.broadcast()  // a reader thread waiting for room gives up
        deliver(event, size: 0)
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
        let event = make(stdout, stderr, results)
        lock.broadcast()  // a reader thread waiting for room gives up
        deliver(event, size: 0)
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
        lock.withLock { target = requestID.map { (worker, $0) } }
    }

    /// Forwards an answer to the run's open request for input (`code.input` with `fields`,
    /// `{value}` or `{eof: true}`) to its worker; returns the worker's answer (`.result` or
    /// `.error`, e.g. `not_waiting_for_input`).
    public func answerInput(_ fields: JSONObject) async -> RelayEvent {
        let notWaiting = RelayEvent.error(
            code: -32602, message: "The run is not waiting for input (it was answered already, or has ended).",
            data: ["reason": "not_waiting_for_input", "field": "request_id"])
        guard let (worker, id) = lock.withLock({ ended ? nil : target }) else { return notWaiting }
        var params = fields
        params["request_id"] = .integer(id)
        let reply: WorkerReply = await withCheckedContinuation { continuation in
            let sent = worker.send("code.input", params, Worker.Pending(
                notification: { _, _ in }, reply: { continuation.resume(returning: $0) }))
            if sent == nil { continuation.resume(returning: .ended) }
        }
        switch reply {
        case .result(let result):
            return .result(result)
        case .error(let error):
            return .error(code: error["code"]?.intValue ?? -32603, message: error["message"]?.stringValue ?? "The worker failed.",
                          data: error["data"])
        case .ended:
            return notWaiting
        }
    }

    /// The output and rich results kept so far, for a result the server writes.
    func keptOutput() -> (stdout: HeadTailBuffer, stderr: HeadTailBuffer, results: [JSONValue]) {
        lock.withLock { (stdout, stderr, results) }
    }

    /// Called with the lock held; releases it.
    private func deliver(_ event: RelayEvent, size: Int) {
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(returning: event)
            return
        }
        events.append(event)
        bytes += size
        lock.unlock()
    }

    /// The next event; the run's answer is the last. Only for a relay without a consumer.
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
            } else {
                waiter = continuation
                lock.broadcast()
                lock.unlock()
            }
        }
    }
}
