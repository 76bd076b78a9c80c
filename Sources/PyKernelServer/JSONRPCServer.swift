import Foundation
import JSONRPC
import Logging
import PyKernel
import PyKernelIsolation
import Synchronization

/// `pykernel serve`: JSON-RPC 2.0 over newline-delimited JSON.
///
/// Requests are read in order and handled concurrently: each method validates its params and
/// starts its work in arrival order (so runs of one context queue in arrival order), then answers
/// when that work finishes. Nothing but protocol messages is written to the output descriptor.
public final class JSONRPCServer: Sendable {
    /// The JSON-RPC protocol version this server speaks (see `docs/protocol.md`).
    public static let protocolVersion = 1

    let manager: KernelManager
    let channel: MessageChannel
    let logger: Logger
    /// Process contexts (`nil`: this server has namespace contexts only).
    let processContexts: ProcessContexts?
    /// The kind of context `context.create` makes when `isolation` is not given.
    let defaultIsolation: ContextIsolation
    private let input: Int32
    private let maxLineLength: Int
    let inFlight = InFlightRequests()
    /// The runs whose code waits for input, by their `code.run` request's id.
    let openInputs = OpenInputs()
    private let stop = StopSignal()
    /// Whether another request was read already after the one the reader thread handles (see
    /// ``awaitNextRequest(atMost:)``); written and read on that thread only.
    private let anotherRequestRead = Atomic<Bool>(false)
    /// How long the answer of a `code.interrupt` that interrupted a run waits for the run's
    /// response to be written with it (zero: answered at once, on its own).
    let interruptAnswerHold: Duration
    private let methods: [String: MethodHandler]
    /// What a shutdown does as it begins and what it ends before it waits for the requests in
    /// flight (``onShutdown(begin:end:)``).
    private let shutdownWork = Mutex<[(begin: @Sendable () -> Void, end: @Sendable () async -> Void)]>([])
    /// What ends at the end of input (``onEndOfInput(_:)``).
    private let endOfInputWork = Mutex<[@Sendable () -> Void]>([])
    private let shutdownBegun = Atomic<Bool>(false)

    /// - Parameters:
    ///   - input: The descriptor requests are read from.
    ///   - output: The descriptor responses and notifications are written to.
    ///   - logger: Where the server's diagnostics go (never to `output`).
    ///   - extraMethods: Further methods (the process API), by name.
    ///   - processContexts: The process contexts (`isolation: "process"`), if the server offers them.
    ///   - defaultIsolation: The kind of context `context.create` makes when `isolation` is not given.
    public convenience init(
        manager: KernelManager, input: Int32, output: Int32, logger: Logger = Logger(label: "pykernel.server"),
        maxLineLength: Int = LineReader.defaultMaxLineLength, extraMethods: [String: MethodHandler] = [:],
        processContexts: ProcessContexts? = nil, defaultIsolation: ContextIsolation = .namespace
    ) {
        self.init(manager: manager, input: input, output: output, logger: logger, maxLineLength: maxLineLength,
                  extraMethods: extraMethods, outputLimits: MessageChannel.Limits(),
                  processContexts: processContexts, defaultIsolation: defaultIsolation)
    }

    /// The server with the caps of its outgoing queues chosen (for tests).
    init(
        manager: KernelManager, input: Int32, output: Int32, logger: Logger,
        maxLineLength: Int, extraMethods: [String: MethodHandler], outputLimits: MessageChannel.Limits,
        processContexts: ProcessContexts? = nil, defaultIsolation: ContextIsolation = .namespace,
        interruptAnswerHold: Duration = .milliseconds(2)
    ) {
        self.interruptAnswerHold = interruptAnswerHold
        self.processContexts = processContexts
        self.defaultIsolation = defaultIsolation
        self.manager = manager
        self.input = input
        self.channel = MessageChannel(fileDescriptor: output, limits: outputLimits, logger: logger)
        self.logger = logger
        self.maxLineLength = maxLineLength
        self.methods = Self.kernelMethods.merging(Self.isolationMethods(Self.kernelMethods)) { _, routed in routed }
            .merging(extraMethods) { kernel, _ in kernel }
    }

    /// The names of every method this server answers.
    public var methodNames: [String] { methods.keys.sorted() }

    /// Serves until end of input (after answering every request read) or until shutdown.
    public func serve() async {
        let reader = Thread { [self] in
            readRequests()
            openInputs.endOfInput()
            for work in endOfInputWork.withLock({ $0 }) { work() }
            Task { await shutDownOnceOutputIsGone() }
            Task {
                logger.info("end of input; finishing \(inFlight.count) request(s)")
                await inFlight.waitUntilEmpty()
                // What still runs (the process API's background commands, PTYs) ends now, its
                // end announced (`session.exited`, `pty.exited`) before the output closes.
                for work in shutdownWork.withLock({ $0 }) {
                    work.begin()
                    await work.end()
                }
                stop.fire()
            }
        }
        reader.name = "pykernel-protocol-reader"
        reader.start()
        await stop.wait()
        // A `shutdown` is answered once the shutdown is done, after the stop: its answer is
        // queued before the last flush (the program exits after this returns).
        _ = await inFlight.waitUntilShutdownsAnswered(for: .seconds(1))
        await channel.flush()
    }

    /// Sends a notification not tied to a request (e.g. `session.exited`), without waiting for
    /// room in the outgoing queue (one small line per event).
    public func broadcast(_ method: String, _ params: JSONObject) {
        channel.sendWithoutWaiting(RPCMessage.notification(method: method, params: .object(params)))
    }

    /// Shuts down as on SIGTERM: interrupts runs in flight, answers them, then ends ``serve()``.
    public func terminate() {
        beginShutdown()
        Task { await shutDown() }
    }

    /// After the end of input, until the server stops: shuts down as on SIGTERM once its output is
    /// gone too (``MessageChannel/isGone``; checked every 100 ms). The client has gone (it closed
    /// both pipes, or crashed): no answer can reach it and it can send nothing, so runs that
    /// went on to their timeout (for ever without one) and the queued runs after them, their
    /// output written nowhere, are stopped.
    private func shutDownOnceOutputIsGone() async {
        while !stop.hasFired {
            // Asked again after the look: once the server has stopped, its output descriptor may
            // be closed by its owner and its number reused for another file (an in-process host's
            // next server, a test's pipe), which the look may have seen ended.
            if channel.isGone, !stop.hasFired {
                logger.warning("end of input and the protocol output is closed (the client is gone): shutting down as on SIGTERM")
                terminate()
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Reads and dispatches requests on the calling thread (no hand-off per line) until end of input.
    private func readRequests() {
        LineReader.readLines(fileDescriptor: input, maxLineLength: maxLineLength) { element, anotherLineRead in
            anotherRequestRead.store(anotherLineRead, ordering: .relaxed)
            // The runs for process contexts of the lines read together go to each worker in one write.
            defer { if !anotherLineRead { processContexts?.writeHeldRuns() } }
            switch element {
            case .tooLong(let length):
                logger.warning("rejected a line of \(length) bytes")
                channel.batch {
                    channel.sendNow(RPCMessage.errorResponse(id: nil, error: .invalidRequest(
                        "The request is \(length) bytes long, more than the \(maxLineLength) bytes a line may have.",
                        data: ["max_line_bytes": .integer(Int64(maxLineLength))])))
                }
            case .line(let bytes):
                guard bytes.contains(where: { !Self.isWhitespace($0) }) else { return }
                // A probable `code.interrupt` wakes the interpreter before the line is decoded.
                let anticipated = Self.mayInterrupt(bytes)
                    && manager.anticipateInterrupt(ifRunningIn: { Self.holdsString(bytes, $0.rawValue.utf8) })
                // What the request answers at once (notifications, then its response) goes out in one write.
                channel.batch {
                    handle(IncomingMessage.decode(line: bytes))
                    if anticipated { manager.endInterruptAnticipation() }  // before the batch waits for room
                }
            }
        }
    }

    /// Whether a request line probably is a `code.interrupt` (its method's name appears in it, as
    /// a whole JSON string): a hint, checked before decoding, for lines short enough to scan.
    static func mayInterrupt(_ line: [UInt8]) -> Bool {
        line.count <= 1024 && holdsString(line, "code.interrupt".utf8)
    }

    /// Whether `line` holds `text` as a whole JSON string written without escapes (`"text"`).
    static func holdsString(_ line: [UInt8], _ text: String.UTF8View) -> Bool {
        let length = text.count + 2
        guard line.count >= length else { return false }
        return line.withUnsafeBufferPointer { bytes in
            for start in 0...(bytes.count - length) where bytes[start] == 0x22 && bytes[start + length - 1] == 0x22 {
                if text.elementsEqual(bytes[(start + 1)..<(start + length - 1)]) { return true }
            }
            return false
        }
    }

    /// On the reader thread, while it handles a request: waits until the next request can be
    /// read (one was read already, the input is readable or at its end) or `duration` has
    /// passed. Nothing else wakes it: a thread that waits for an answer to be written would be
    /// woken right after that write, competing with the client the write wakes for the processor.
    func awaitNextRequest(atMost duration: Duration) {
        guard !anotherRequestRead.load(ordering: .relaxed) else { return }
        let deadline = ContinuousClock.now + duration
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - .now
            guard left > .zero else { return }
            // Whole milliseconds, rounded up: `poll` never returns before the deadline.
            let milliseconds = left.components.seconds * 1000 + (left.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            let ready = poll(&descriptor, 1, Int32(clamping: milliseconds))
            if ready > 0 || (ready < 0 && errno != EINTR) { return }  // readable, hung up, or an error
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private func handle(_ message: IncomingMessage) {
        switch message {
        case .invalid(let id, let error):
            channel.sendNow(RPCMessage.errorResponse(id: id, error: error))
        case .notification(let method, let params):
            logger.debug("notification \(method)")
            // Executed like a request (and finished before exit), but never answered.
            let ticket = inFlight.insertAnonymous()
            switch dispatch(method: method, params: params, id: nil, tracking: ticket) {
            case .result, .failure:
                inFlight.remove(ticket)
            case .deferred(let work, let request):
                Task {
                    _ = try? await work()
                    await request.respond(.success(.null))
                }
            case .later:
                break  // the method calls `Request.finish`, which stops tracking it
            }
        case .request(let id, let method, let params):
            guard inFlight.insert(id) else {
                channel.sendNow(RPCMessage.errorResponse(id: id, error: .invalidRequest(
                    "A request with this id is still in progress; use a unique id for each request in flight.",
                    data: ["id": id.jsonValue])))
                return
            }
            logger.debug("request \(method)")
            switch dispatch(method: method, params: params, id: id, tracking: id) {
            case .result(let result):
                respond(id, .success(result))
            case .failure(let error):
                respond(id, .failure(error))
            case .deferred(let work, let request):
                Task {
                    let outcome: Result<JSONValue, RPCError>
                    do throws(RPCError) { outcome = .success(try await work()) } catch { outcome = .failure(error) }
                    await request.respond(outcome)
                }
            case .later:
                break  // answered through `Request.finish` or `Request.respond`
            }
        }
    }

    private enum Dispatched {
        case result(JSONValue)
        case failure(RPCError)
        case deferred(@Sendable () async throws(RPCError) -> JSONValue, Request)
        case later
    }

    /// Runs the synchronous part of a method (validation, submission) in arrival order.
    private func dispatch(method: String, params: JSONValue?, id: RequestID?, tracking: RequestID) -> Dispatched {
        guard let handler = methods[method] else { return .failure(.methodNotFound(method)) }
        do throws(RPCError) {
            let params = try Params(params)
            try Self.rejectUnknownParameters(params, of: method)
            let request = Request(server: self, id: id, trackingKey: tracking, params: params)
            switch try handler(request) {
            case .result(let result): return .result(result)
            case .deferred(let work): return .deferred(work, request)
            case .later: return .later
            }
        } catch {
            return .failure(error)
        }
    }

    private func respond(_ id: RequestID, _ outcome: Result<JSONValue, RPCError>) {
        channel.sendNow(Self.encode(id, outcome)) { inFlight.remove(id) }
    }

    static func encode(_ id: RequestID, _ outcome: Result<JSONValue, RPCError>) -> [UInt8] {
        switch outcome {
        case .success(let result): RPCMessage.response(id: id, result: result)
        case .failure(let error): RPCMessage.errorResponse(id: id, error: error)
        }
    }

    /// Adds work to a shutdown (`shutdown`, SIGTERM, SIGINT): `begin` as it begins, on the thread
    /// that reads requests (what is read after it is refused: the process API's new commands),
    /// `end` before it waits for the requests in flight (the process API's commands killed, so
    /// that their requests are answered and its notifications sent before the `shutdown`
    /// response, which is the last).
    public func onShutdown(begin: @escaping @Sendable () -> Void, end: @escaping @Sendable () async -> Void) {
        shutdownWork.withLock { $0.append((begin, end)) }
    }

    /// Adds work to the end of input, before the server waits for the requests in flight: what
    /// would wait for a client that sends nothing more (the process API's follows of logs).
    public func onEndOfInput(_ work: @escaping @Sendable () -> Void) {
        endOfInputWork.withLock { $0.append(work) }
    }

    /// The start of a shutdown, where it is asked for: no run starts from now on, nor any work
    /// added with ``onShutdown(begin:end:)``. (Requests read after it are refused, not raced.)
    /// Once: a second interrupt of the run in progress would stop code that caught the first.
    func beginShutdown() {
        guard !shutdownBegun.exchange(true, ordering: .acquiringAndReleasing) else { return }
        manager.shutdown()
        processContexts?.beginShutdown()
        for work in shutdownWork.withLock({ $0 }) { work.begin() }
    }

    /// Interrupts what runs, ends the work added with ``onShutdown(begin:end:)``, waits for the
    /// answers of the requests in flight (but `shutdown`s), then ends ``serve()``.
    ///
    /// Code that swallows the interrupt is answered `interrupted` after the grace period anyway, and
    /// requests still unfinished a second later (a followed log) are abandoned.
    func shutDown() async {
        logger.info("shutting down")
        beginShutdown()
        await processContexts?.shutdown()
        for work in shutdownWork.withLock({ $0 }) { await work.end() }
        if await !inFlight.waitUntilAllButShutdownsEnd(for: manager.configuration.timeoutGracePeriod) {
            manager.abandonRunningRun()
            if await !inFlight.waitUntilAllButShutdownsEnd(for: .seconds(1)) {
                logger.warning("shutting down with \(inFlight.countButShutdowns) request(s) unanswered")
            }
        }
        await channel.flush()
        stop.fire()
    }
}

/// What a method handler receives.
public struct Request: Sendable {
    let server: JSONRPCServer
    /// The request's id; `nil` for a notification (which gets no response and no notifications).
    public let id: RequestID?
    /// The key under which the server tracks this request's work until it is finished.
    let trackingKey: RequestID
    /// The request's parameters, read through typed accessors that throw the protocol's errors.
    public let params: Params
    /// Set once the request has sent a notification (its response then follows them in their lane).
    let notifications = NotificationMark()
    /// What a deferred method starts once its response is queued.
    let followUp = FollowUp()

    /// Runs `action` once this request's response is queued (for a deferred method; a failed
    /// request's response too): notifications it sends then follow the response.
    package func afterResponse(_ action: @escaping @Sendable () -> Void) {
        followUp.set(action)
    }

    /// Sends a notification about this request (`params.request_id` is this request's id).
    /// Nothing is sent for a notification request.
    public func notify(_ method: String, _ fields: JSONObject) async {
        guard let line = notificationSent(method, fields) else { return }
        await server.channel.send(line, lane: .stream)
    }

    /// Sends a notification about this request whose params, after `request_id`, `members` writes
    /// (see ``notificationLine(_:capacity:_:)``). Nothing is sent for a notification request.
    func notify(_ method: String, capacity: Int = 128, _ members: (inout JSONObjectWriter) -> Void) async {
        guard id != nil else { return }
        notifications.sent = true
        await server.channel.send(notificationLine(method, capacity: capacity, members), lane: .stream)
    }

    /// A notification about this request, encoded: `{"jsonrpc":"2.0","method":method,"params":
    /// {"request_id":id,…}}`, the members after `request_id` written in order by `members`
    /// (each key once; no object is built). Empty for a notification request (which sends none).
    func notificationLine(_ method: String, capacity: Int = 128, _ members: (inout JSONObjectWriter) -> Void) -> [UInt8] {
        guard let id else { return [] }
        return RPCMessage.notification(method: method, requestID: id, capacity: capacity, members)
    }

    /// The line of a notification about this request, its params `{"request_id": id, ...fields}`
    /// (without its newline), this request marked as having sent notifications; `nil` for a
    /// notification request (which sends none).
    private func notificationSent(_ method: String, _ fields: JSONObject) -> [UInt8]? {
        guard let id else { return nil }
        notifications.sent = true
        // Through the arrays: iterating the object from this module would go through an
        // unspecialized opaque iterator.
        var params: JSONObject = ["request_id": id.jsonValue]
        for index in fields.keys.indices { params[fields.keys[index]] = fields.values[index] }
        return RPCMessage.notification(method: method, params: .object(params))
    }

    /// Answers a request whose work ended (a deferred method's, or one that replied
    /// ``MethodReply/later``): after its notifications, in their lane; else in the control lane
    /// (not behind other requests' output). The id is free again by the time the client can read
    /// the response. For a notification request, nothing is sent.
    func respond(_ outcome: Result<JSONValue, RPCError>) async {
        guard let id else {
            followUp.run()
            server.inFlight.remove(trackingKey)
            return
        }
        let lane: MessageChannel.Lane = notifications.sent ? .stream : .control
        await server.channel.send(JSONRPCServer.encode(id, outcome), lane: lane) { [server] in server.inFlight.remove(id) }
        followUp.run()
    }

    /// Answers a request that replies ``MethodReply/later`` at once, never waiting, as the server
    /// answers a synchronous method (in the request reader's batch when called there). For a
    /// notification request, nothing is sent.
    func respondNow(_ outcome: Result<JSONValue, RPCError>) {
        guard let id else {
            server.inFlight.remove(trackingKey)
            return
        }
        server.channel.sendNow(JSONRPCServer.encode(id, outcome)) { server.inFlight.remove(id) }
    }

    /// Answers a request that replied ``MethodReply/later`` from the thread where its work ended,
    /// without a task: `write` appends its last notifications then its response to one unit (given
    /// this request's id) and returns whether it wrote notifications; the unit is sent as one (see
    /// ``MessageChannel/sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``), starting with room for `capacity`
    /// bytes. For a notification request, nothing is written or sent.
    /// - Parameter holdWhileRunsWait: On the interpreter thread: while more runs wait for it, the
    ///   unit may wait for their answers, to go out with them (see ``MessageChannel/sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``).
    func finish(capacity: Int, holdWhileRunsWait: Bool = false, _ write: (inout RPCUnit, RequestID) -> Bool) {
        guard let id else {
            followUp.run()
            server.inFlight.remove(trackingKey)
            return
        }
        var unit = RPCUnit(capacity: capacity)
        let notified = write(&unit, id)
        let lane: MessageChannel.Lane = notifications.sent || notified ? .stream : .control
        // A run's end on a task (a shutdown failing queued runs) must not block the pool.
        let onTask = withUnsafeCurrentTask { $0 != nil }
        // With no run waiting, the client the response wakes reads it before this thread goes on.
        let runsWait = server.manager.interpreterHasWaitingWork
        server.channel.sendUnit(unit.bytes, lane: lane, mayWait: !onTask, yieldAfterWrite: !onTask && !runsWait,
                                hold: holdWhileRunsWait && !onTask && runsWait) { server.inFlight.remove(id) }
        followUp.run()
    }

    /// The line of a notification about this request with its newline, for sending later with
    /// others (``sendNotificationsWaitingForRoom(_:)``, or before the response in one unit); the
    /// request is marked as having sent notifications. `nil` for a notification request.
    func framedNotification(_ method: String, _ fields: JSONObject) -> [UInt8]? {
        guard var line = notificationSent(method, fields) else { return nil }
        line.append(0x0A)
        return line
    }

    /// Sends notification lines about this request (``framedNotification(_:_:)``'s, one after
    /// another) as one unit from a thread (not a task), waiting while the stream lane is full (on
    /// a task: at once, past the cap). The thread's wait can be cut short: the lines are written by
    /// the writer thread, and the lane may hold `roomPastCap()` bytes more for them (see
    /// ``MessageChannel/sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``).
    func sendNotificationsWaitingForRoom(_ lines: [UInt8], roomPastCap: @escaping () -> Int) {
        let onTask = withUnsafeCurrentTask { $0 != nil }
        server.channel.sendUnit(lines, lane: .stream, mayWait: !onTask, roomPastCap: roomPastCap) {}
    }

    /// Wakes the threads waiting for room in the protocol output, to read their room past the
    /// cap again (``sendNotificationsWaitingForRoom(_:roomPastCap:)``).
    func wakeThreadsWaitingForRoom() {
        server.channel.wakeWaitingThreads()
    }

    /// Sends a notification about this request without waiting for room (for small amounts).
    public func notifyNow(_ method: String, _ fields: JSONObject) {
        guard let line = notificationSent(method, fields) else { return }
        server.channel.sendNow(line)
    }

}

/// An action to start once a request's response is queued (see ``Request/afterResponse(_:)``).
final class FollowUp: Sendable {
    private let action = Mutex<(@Sendable () -> Void)?>(nil)

    func set(_ action: @escaping @Sendable () -> Void) {
        self.action.withLock { $0 = action }
    }

    func run() {
        action.withLock { action in defer { action = nil }; return action }?()
    }
}

/// Whether a request has sent notifications.
final class NotificationMark: Sendable {
    private let flag = Atomic(false)

    var sent: Bool {
        get { flag.load(ordering: .acquiring) }
        set { flag.store(newValue, ordering: .releasing) }
    }
}

/// A method's answer: at once, or after asynchronous work.
public enum MethodReply: Sendable {
    case result(JSONValue)
    case deferred(@Sendable () async throws(RPCError) -> JSONValue)
    /// The method has started work that answers the request by itself when it ends (`code.run`:
    /// from the thread where the run ends, without a task hop); only the server's own methods can.
    case later
}

/// Validates params and starts the work, synchronously and in arrival order.
public typealias MethodHandler = @Sendable (Request) throws(RPCError) -> MethodReply

/// The ids of requests being worked on, and a way to wait until there are none.
final class InFlightRequests: Sendable {
    private struct State {
        var ids: Set<RequestID> = []
        /// The `shutdown` requests among `ids`: a shutdown does not wait for them (nor for itself).
        var shutdowns: Set<RequestID> = []
        var nextAnonymous = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    var count: Int { state.withLock { $0.ids.count } }

    func insert(_ id: RequestID) -> Bool { state.withLock { $0.ids.insert(id).inserted } }

    /// Tracks work without a request id (a notification's); returns its key for ``remove(_:)``.
    /// The key is a string no JSON text can produce as an id of a request line we accepted
    /// (it holds a NUL character and is never sent).
    func insertAnonymous() -> RequestID {
        state.withLock { state in
            state.nextAnonymous += 1
            let key = RequestID.string("\u{0}notification-\(state.nextAnonymous)")
            state.ids.insert(key)
            return key
        }
    }

    /// Marks a request in flight as a `shutdown` (see ``waitUntilAllButShutdownsEnd(for:)``).
    func markShutdown(_ id: RequestID) {
        state.withLock { _ = $0.shutdowns.insert(id) }
    }

    func remove(_ id: RequestID) {
        let ready = state.withLock { state in
            state.ids.remove(id)
            state.shutdowns.remove(id)
            guard state.ids.isEmpty else { return [CheckedContinuation<Void, Never>]() }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in ready { waiter.resume() }
    }

    func waitUntilEmpty() async {
        await withCheckedContinuation { continuation in
            state.withLock { state in
                if state.ids.isEmpty { continuation.resume() } else { state.waiters.append(continuation) }
            }
        }
    }

    /// Waits at most `limit` until the only requests in flight are `shutdown`s (two at once each
    /// waited for the other); `false` when others were still in flight then.
    func waitUntilAllButShutdownsEnd(for limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.ids.isSubset(of: $0.shutdowns) }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return state.withLock { $0.ids.isSubset(of: $0.shutdowns) }
    }

    /// Waits at most `limit` until no `shutdown` is in flight (each answered); `false` if one still was.
    func waitUntilShutdownsAnswered(for limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.shutdowns.isEmpty }) { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return state.withLock { $0.shutdowns.isEmpty }
    }

    /// The requests in flight but `shutdown`s.
    var countButShutdowns: Int { state.withLock { $0.ids.subtracting($0.shutdowns).count } }
}

/// How to answer the open request for input of each run that waits for one, by the id of the
/// `code.run` request that started the run (`code.input` names it).
final class OpenInputs: Sendable {
    /// Answers the open request (the engine's or a worker's) for the `code.input` request given
    /// (`nil`: none, the client's input has ended; the reply is then ignored); throws when it is
    /// no longer open.
    typealias Answer = @Sendable (InputReply, Request?) throws(RPCError) -> MethodReply
    /// The open requests; `nil` once the client's input has ended.
    private let answers = Mutex<[RequestID: Answer]?>([:])

    /// Records (or replaces) the run's open request; after the end of input, answers it end of
    /// file at once instead (no `code.input` can come any more).
    func open(_ id: RequestID, _ answer: @escaping Answer) {
        let inputEnded = answers.withLock { answers in
            guard answers != nil else { return true }
            answers?[id] = answer
            return false
        }
        if inputEnded { Self.answerEndOfFile(answer) }
    }

    /// Forgets the run (it has ended).
    func close(_ id: RequestID) { _ = answers.withLock { $0?.removeValue(forKey: id) } }

    func answer(for id: RequestID) -> Answer? { answers.withLock { $0?[id] } }

    /// The client's input has ended: every open request, and each one opened later, is answered
    /// end of file, as `code.input` with `eof` would (nobody is left to answer; the runs end).
    func endOfInput() {
        let open = answers.withLock { answers in
            defer { answers = nil }
            return Array((answers ?? [:]).values)
        }
        for answer in open { Self.answerEndOfFile(answer) }
    }

    /// Answers end of file (a process context's answer goes to its worker, never waiting); a
    /// request closed meanwhile (its run ended) needs none.
    private static func answerEndOfFile(_ answer: Answer) {
        _ = try? answer(.endOfFile, nil)
    }
}

/// Fires once; every waiter then returns.
final class StopSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Whether ``fire()`` was called.
    var hasFired: Bool { state.withLock { $0.fired } }

    func fire() {
        let waiters = state.withLock { state in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            state.withLock { state in
                if state.fired { continuation.resume() } else { state.waiters.append(continuation) }
            }
        }
    }
}
