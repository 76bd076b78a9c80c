import PyKernelSupport
import Synchronization
import Glibc

/// Output chunks in the order written; consecutive writes to one stream are merged. A class, so
/// the write path appends in place (never copying the queue); guarded by the ``OutputHub``'s lock.
///
/// Short writes (printed lines) go to a buffer the queue reuses (the "open" chunk): a write is one
/// copy into it, without an array's growth or its nested access per write. It becomes an ordinary
/// chunk (one copy, of the size it has then) when another stream, an event or a long write follows
/// it, or when the reader takes it. Long writes (pieces of a long `write`, reads of the descriptor
/// pipes) are appended to the newest ordinary chunk as they were before, with no second copy.
final class ChunkQueue {
    struct Chunk {
        var stream: OutputStreamName
        var bytes: [UInt8]
        /// A rich result, in order with the output around it (then `bytes` is empty).
        var result: RichResult? = nil
        /// A request for input, in order with the output around it (then `bytes` is empty).
        var input: InputRequest? = nil

        /// Whether this is a rich result or an input request (never merged, handed out at once).
        var isEvent: Bool { result != nil || input != nil }
    }

    /// The chunks before the open one.
    @exclusivity(unchecked) private var chunks: [Chunk] = []
    @exclusivity(unchecked) private var head = 0
    /// Bytes of `chunks[head]` already handed out (a chunk larger than a reader takes at once).
    @exclusivity(unchecked) private var headOffset = 0
    @exclusivity(unchecked) private(set) var byteCount = 0
    /// The stream of the open chunk; its bytes are the first `openCount` of `openBuffer`
    /// (none: no open chunk, and the next write starts one).
    @exclusivity(unchecked) private var openStream: OutputStreamName = .stdout
    @exclusivity(unchecked) private var openCount = 0
    @exclusivity(unchecked) private var openBuffer: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var openCapacity = 0
    /// The stream of the newest ordinary chunk when a long write to that stream may be merged into
    /// it (it is unread output, not an event, and no open chunk follows it).
    @exclusivity(unchecked) private var mergeableStream: OutputStreamName?
    /// When the oldest unread byte was written.
    @exclusivity(unchecked) private(set) var oldestWrite: ContinuousClock.Instant?
    /// Whether the code flushed a stream since the queue was last empty: what it holds is due at
    /// once, not at the end of the coalescing window.
    @exclusivity(unchecked) var flushRequested = false

    deinit { openBuffer?.deallocate() }

    var isEmpty: Bool { head == chunks.count && openCount == 0 }
    var chunkCount: Int { chunks.count - head + (openCount > 0 ? 1 : 0) }

    /// Writes of at least this many bytes skip the open chunk (so they are copied once).
    static let longWrite = 4096

    func append(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if isEmpty { oldestWrite = .now }
        byteCount += bytes.count
        // A long write, or a write that follows one to the same stream (until the reader takes it).
        if bytes.count >= Self.longWrite || (openCount == 0 && mergeableStream == stream) {
            closeOpenChunk()
            let typed = bytes.bindMemory(to: UInt8.self)  // appended with one copy, not byte by byte
            if mergeableStream == stream {
                chunks[chunks.count - 1].bytes.append(contentsOf: typed)
            } else {
                chunks.append(Chunk(stream: stream, bytes: Array(typed)))
                mergeableStream = stream
            }
            return
        }
        if openCount > 0 && openStream != stream { closeOpenChunk() }
        openStream = stream
        if openCount + bytes.count > openCapacity { growOpenBuffer(to: openCount + bytes.count) }
        (openBuffer.unsafelyUnwrapped + openCount).copyMemory(from: source, byteCount: bytes.count)
        openCount += bytes.count
    }

    /// The open buffer's first size: a block the allocator keeps per thread (glibc's tcache holds
    /// blocks up to 1,032 bytes), since most runs print a few lines.
    static let openBufferFirstCapacity = 512

    @inline(never)
    private func growOpenBuffer(to needed: Int) {
        let capacity = max(needed, 2 * openCapacity, Self.openBufferFirstCapacity)
        // Byte alignment: `malloc` itself (a larger alignment goes through `posix_memalign`).
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        if let openBuffer {
            buffer.copyMemory(from: openBuffer, byteCount: openCount)
            openBuffer.deallocate()
        }
        openBuffer = buffer
        openCapacity = capacity
    }

    /// Makes the open chunk an ordinary one (its bytes copied out; the buffer is kept for the next).
    private func closeOpenChunk() {
        guard openCount > 0, let openBuffer else { return }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: openBuffer, count: openCount))
        chunks.append(Chunk(stream: openStream, bytes: bytes))
        mergeableStream = openStream
        openCount = 0
    }

    /// Appends a rich result after the output written so far (never merged with other chunks).
    func append(_ result: RichResult) {
        if isEmpty { oldestWrite = .now }
        closeOpenChunk()
        chunks.append(Chunk(stream: .stdout, bytes: [], result: result))
        mergeableStream = nil
    }

    /// Appends a request for input after the output written so far.
    func append(_ input: InputRequest) {
        if isEmpty { oldestWrite = .now }
        closeOpenChunk()
        chunks.append(Chunk(stream: .stdout, bytes: [], input: input))
        mergeableStream = nil
    }

    /// Calls `body` with every unread byte of output, in order, chunk by chunk; nothing is taken.
    func forEachUnread(_ body: (OutputStreamName, UnsafeRawBufferPointer) -> Void) {
        for index in head..<chunks.count where !chunks[index].isEvent {
            let start = index == head ? headOffset : 0
            chunks[index].bytes.withUnsafeBytes { body(chunks[index].stream, UnsafeRawBufferPointer(rebasing: $0[start...])) }
        }
        if openCount > 0 { body(openStream, UnsafeRawBufferPointer(start: openBuffer, count: openCount)) }
    }

    /// Whether the oldest unread chunk is a rich result or an input request (handed out at once,
    /// not coalesced).
    var headIsResult: Bool { head < chunks.count && chunks[head].isEvent }

    /// Drops every unread chunk.
    func removeAll() {
        chunks = []
        head = 0
        headOffset = 0
        byteCount = 0
        openCount = 0
        mergeableStream = nil
        oldestWrite = nil
        flushRequested = false
    }

    /// Takes the oldest unread chunk, or only its first `maxBytes` bytes when it holds more (the
    /// rest stays first, with the time of its write).
    func popFirst(maxBytes: Int = .max) -> Chunk? {
        // The open chunk is taken as an ordinary one: later writes start a new chunk, so a chunk
        // handed out in parts cannot grow with a stream that never pauses.
        if head == chunks.count { closeOpenChunk() }
        guard head < chunks.count else { return nil }
        if chunks[head].bytes.count - headOffset > maxBytes {
            let start = headOffset
            headOffset += maxBytes
            byteCount -= maxBytes
            if head == chunks.count - 1 { mergeableStream = nil }
            return Chunk(stream: chunks[head].stream, bytes: Array(chunks[head].bytes[start..<headOffset]))
        }
        // Moved out, not copied (a copy would retain each of its buffers, and release them with the slot).
        var chunk = Chunk(stream: .stdout, bytes: [])
        swap(&chunk, &chunks[head])
        if headOffset > 0 {
            chunk.bytes.removeFirst(headOffset)
            headOffset = 0
        }
        head += 1
        byteCount -= chunk.bytes.count
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            head = 0
            mergeableStream = nil
            oldestWrite = openCount > 0 ? .now : nil
            if openCount == 0 { flushRequested = false }
        } else {
            oldestWrite = .now
        }
        return chunk
    }
}

/// One run's output on its way to the caller, and its outcome. All mutable state is guarded by
/// the ``OutputHub``'s lock (so the hot properties skip Swift's dynamic exclusivity checks): writers (the interpreter thread, Python threads, the pipe reader)
/// append; the caller's iterator takes coalesced chunks.
final class RunOutput: @unchecked Sendable {  // state guarded by the hub's lock (a ConditionLock), unchecked on the write path
    enum Outcome {
        case completed(ExecutionResult)
        case failed(KernelError)
    }

    /// Chunks are handed out once this many bytes are waiting, or `coalescingWindow` after the
    /// oldest unread write, whichever comes first (at once after a flush: ``flushLocked()``).
    /// 256 KiB rather than 64: 100 MB from a subprocess took 3× fewer hand-outs and 22% less of
    /// the server's CPU, 8% less time (Benchmarks/README.md, round 21); printed lines the same.
    static let flushBytes = 256 * 1024
    /// ``KernelConfiguration/outputCoalescingWindow``.
    private let coalescingWindow: Duration
    /// The least time between two hand-outs that a flush makes due: code that flushes after
    /// every write (logging handlers) costs the reader a wake-up per millisecond at most.
    static let flushSpacing = Duration.milliseconds(1)
    /// The most bytes of output in one event: more waiting in one stream is handed out in several.
    static let maxChunkBytes = 1 << 20

    let context: ContextID
    /// The bytes of stdout, of stderr, and of a rich result's text, the result keeps.
    let resultLimit: Int
    /// Whether the run's code may ask the caller for input (`allow_stdin`).
    let allowsInput: Bool
    /// Called when the caller stops reading before the end (``abandon()``, `cancelled` false) or
    /// the task reading it is cancelled (``readerCancelled()``, `cancelled` true): the engine ends
    /// a wait for input nobody will answer and, on cancellation, withdraws the run if still queued.
    private let onReaderGone: @Sendable (_ output: RunOutput, _ cancelled: Bool) -> Void
    private let hub: OutputHub
    private let deadlines: DeadlineTimer
    /// A constant reference: the write path calls it without retaining it.
    private let queue = ChunkQueue()
    /// What the result keeps of each stream (head and tail up to the output limit). Fed from the
    /// chunks as they are handed out, so a write is copied once on the writer's path (into the
    /// queue); what is still queued when the run ends, or dropped when the caller stops reading,
    /// is added then, and writes after the caller stopped reading are added as they come.
    @exclusivity(unchecked) private var stdout: HeadTailBuffer
    @exclusivity(unchecked) private var stderr: HeadTailBuffer
    /// The bytes of a character split across writes, per stream, kept for its next chunk (two
    /// fields, not a dictionary: every run's end looks at both).
    @exclusivity(unchecked) private var partialStdout: [UInt8] = []
    @exclusivity(unchecked) private var partialStderr: [UInt8] = []
    /// Every rich result of the run, in order (for ``ExecutionResult/results``).
    @exclusivity(unchecked) private var results: [RichResult] = []
    @exclusivity(unchecked) private var outcome: Outcome?
    /// When the reader last took a chunk (for ``flushSpacing``).
    @exclusivity(unchecked) private var lastHandout: ContinuousClock.Instant?
    /// Set (after `outcome`) when the run has ended: spinning readers poll it without the lock,
    /// which would otherwise make the run's own writes wait for them.
    private let hasOutcome = Atomic<Bool>(false)
    /// Whether the run has ended (`outcome` is set), under the lock: testing `outcome` itself
    /// copies the result it holds.
    private var hasEndedLocked: Bool { hasOutcome.load(ordering: .relaxed) }
    /// Whether the run has ended (its outcome is recorded, read or not).
    var hasEnded: Bool { hasOutcome.load(ordering: .acquiring) }
    private var outcomeDelivered = false
    @exclusivity(unchecked) private var abandoned = false
    /// The task parked until there is something to take (the reader).
    private var waiter: CheckedContinuation<Void, Never>? {
        didSet { hasWaiter = waiter != nil || directIdle }
    }
    /// Other tasks parked meanwhile (copies of the execution iterated at once): woken with
    /// ``waiter``, empty unless it is set.
    private var otherWaiters: [CheckedContinuation<Void, Never>] = []
    /// The consumer given at creation: it takes the run's last events on the thread where the run
    /// ends while no task is busy with earlier ones.
    private var direct: DirectRunConsumer?
    /// Whether the direct consumer waits for the first event with no task reading (the next
    /// event then starts its task, through `stream`).
    @exclusivity(unchecked) private var directIdle = false {
        didSet { hasWaiter = waiter != nil || directIdle }
    }
    /// While ``directIdle`` with output queued that is not due yet: when the timer starts the
    /// task (if the run has not ended by then, which then cancels it).
    @exclusivity(unchecked) private var directStart: (at: ContinuousClock.Instant, ticket: DeadlineTimer.Ticket)?
    /// Whether the task that reads the events has taken one (until then, the end may go past it
    /// like past a parked task: it has nothing to send before the end).
    @exclusivity(unchecked) private var readerTookEvent = false
    /// Cheaper to test on every write than the optional continuation.
    @exclusivity(unchecked) private var hasWaiter = false
    @exclusivity(unchecked) private var waiterWantsAnyOutput = true
    private var waiterToken = 0

    /// - Parameter direct: A consumer that takes the run's events without iterating an execution
    ///   (see ``DirectRunConsumer``), registered here, before the output is shared: the run's
    ///   threads find it without a lock taken for it on the submitting thread.
    init(
        context: ContextID, resultLimit: Int, allowsInput: Bool = false, coalescingWindow: Duration,
        hub: OutputHub, deadlines: DeadlineTimer, direct: DirectRunConsumer? = nil,
        onReaderGone: @escaping @Sendable (_ output: RunOutput, _ cancelled: Bool) -> Void = { _, _ in }
    ) {
        self.context = context
        self.resultLimit = resultLimit
        self.allowsInput = allowsInput
        self.coalescingWindow = coalescingWindow
        self.onReaderGone = onReaderGone
        self.hub = hub
        self.deadlines = deadlines
        self.stdout = HeadTailBuffer(limit: resultLimit)
        self.stderr = HeadTailBuffer(limit: resultLimit)
        if let direct {
            self.direct = direct
            directIdle = true
            hasWaiter = true
        }
    }

    // MARK: Writer side (hub lock held)

    var isFullLocked: Bool { !abandoned && queue.byteCount >= OutputHub.capacity }

    /// Takes written bytes; `false` (nothing taken) when full, unless `force`. The path of every
    /// write: no allocation but the buffers' growth, no dynamic exclusivity checks.
    @discardableResult
    func acceptLocked(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, force: Bool) -> Bool {
        if !force && isFullLocked { return false }
        if abandoned {
            recordLocked(stream, bytes)
            return true
        }
        queue.append(stream, bytes)
        if hasWaiter && (waiterWantsAnyOutput || queue.byteCount >= Self.flushBytes || queue.chunkCount > 1) {
            wakeWaiterLocked()
        }
        return true
    }

    /// Adds output to what the result keeps of its stream.
    private func recordLocked(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        if stream == .stdout { stdout.append(bytes) } else { stderr.append(bytes) }
    }

    /// Adds the output still queued (not yet handed out) to what the result keeps: when the run
    /// ends (before its result is made) or the caller stops reading (before the queue is dropped).
    private func recordUnreadLocked() {
        queue.forEachUnread { recordLocked($0, $1) }
    }

    /// Whether a flush waits for the reader (``flushLocked()`` then has nothing to add).
    var flushPendingLocked: Bool { queue.flushRequested }

    /// The code flushed `sys.stdout` or `sys.stderr` (`print(..., flush=True)`, a logging handler):
    /// what is queued is handed out now instead of at the end of the coalescing window. Writes
    /// that come while the reader is busy with it still go out together, and flushed output goes
    /// at most once per ``flushSpacing`` (a logging loop flushes after every record).
    func flushLocked() {
        guard !abandoned, !queue.isEmpty else { return }
        queue.flushRequested = true
        if hasWaiter { wakeWaiterLocked() }
    }

    /// Takes a rich result (never refused: results are not subject to the output limit).
    func acceptResultLocked(_ result: RichResult) {
        results.append(result)
        if !abandoned {
            queue.append(result)
            // The main result is a run's last act (its end follows on this thread): it starts no
            // task of its own for a direct consumer; the end, or an event after it, takes it.
            if hasWaiter, !(result.isMainResult && directIdle) { wakeWaiterLocked() }
        }
    }

    /// Hands a request for input to the caller, in order with the output; `false` when the
    /// caller stopped reading (nobody can answer it) or the run has ended.
    func acceptInput(_ input: InputRequest) -> Bool {
        hub.lock.withLock {
            hub.collectStagedLocked()
            // A prompt written to the descriptors (`os.write`, C code, a subprocess) comes before the
            // request, as the code wrote it: what the pipes hold now is taken first (a request is rare).
            hub.drainDescriptorsLocked()
            guard !abandoned, outcome == nil else { return false }
            queue.append(input)
            if hasWaiter { wakeWaiterLocked() }
            return true
        }
    }

    /// Ends the run with `result`'s status and error; stdout/stderr come from what was written.
    /// Only the first outcome counts (a run reported as timed out may still finish later).
    func complete(status: ExecutionStatus, error: ErrorRecord?, executionCount: Int, duration: Duration) {
        end {
            recordUnreadLocked()
            return .completed(ExecutionResult(
                status: status, stdout: stdout.text(), stderr: stderr.text(),
                stdoutOmittedBytes: stdout.omittedBytes, stderrOmittedBytes: stderr.omittedBytes,
                stdoutHeadBytes: stdout.keptHeadBytes, stderrHeadBytes: stderr.keptHeadBytes,
                error: error, executionCount: executionCount, duration: duration, results: results))
        }
    }

    /// Ends the run without a result: it could not start.
    func fail(_ error: KernelError) {
        end { .failed(error) }
    }

    /// Records the outcome (the first one only), then hands the remaining events to the direct
    /// consumer on this thread when no task is busy with earlier ones, else wakes the reader.
    private func end(_ makeOutcome: () -> Outcome) {
        let delivery: DirectDelivery? = hub.lock.withLock {
            hub.collectStagedLocked()
            guard outcome == nil else { return nil }
            outcome = makeOutcome()
            hasOutcome.store(true, ordering: .releasing)
            // Never needed again (and it holds the execution).
            let direct = self.direct
            self.direct = nil
            if let directStart {
                deadlines.cancel(directStart.ticket)
                self.directStart = nil
            }
            // A task parked on `waiter` has handled every event it took, and one that has taken
            // none (started, not yet scheduled) has nothing to send: the rest may go past it.
            guard let direct, directIdle || waiter != nil || !readerTookEvent else {
                wakeWaiterLocked()
                return nil
            }
            directIdle = false
            defer {
                waiter = nil
                otherWaiters.removeAll()
            }
            return DirectDelivery(end: direct.end, events: takeAllLocked(), parkedTask: waiter, otherParkedTasks: otherWaiters)
        }
        guard let delivery else { return }
        delivery.end(delivery.events)
        // After the consumer has answered: the task then finds the end taken and returns.
        delivery.parkedTask?.resume()
        for task in delivery.otherParkedTasks { task.resume() }
    }

    private func wakeWaiterLocked() {
        guard hasWaiter else { return }
        if directIdle {
            startTaskWhenDueLocked()
            return
        }
        guard waiter != nil else { return }
        if hasEndedLocked || waiterWantsAnyOutput || queue.byteCount >= Self.flushBytes || queue.chunkCount > 1 || queue.headIsResult
            || queue.flushRequested
        {
            resumeWaitersLocked()
        }
    }

    /// Wakes the parked tasks: they take what there is, or park again.
    private func resumeWaitersLocked() {
        let first = waiter
        waiter = nil
        first?.resume()
        guard !otherWaiters.isEmpty else { return }
        let others = otherWaiters
        otherWaiters.removeAll()
        for other in others { other.resume() }
    }

    // MARK: Direct consumer

    /// With events queued before the end and no task reading: starts the task that relays them
    /// (through the direct consumer's `stream`) once they are due, so that a run ending within the
    /// coalescing window is answered with its output at its end, with no task, no wake-up of the
    /// concurrency pool and no lock shared with it while it prints. Not due yet: the timer starts
    /// it at the due time (no sooner than that time, as the task itself would have sent them).
    private func startTaskWhenDueLocked() {
        let step = abandoned ? nil : peekLocked()
        // Taking what the interpreter thread staged (in `peekLocked`) wakes the reader, which may
        // have started the task already: one task reads (two would both park, one continuation lost).
        guard directIdle else { return }
        if case .wait(let due?) = step {
            guard directStart.map({ $0.at > due }) ?? true else { return }
            if let directStart { deadlines.cancel(directStart.ticket) }
            directStart = (due, deadlines.schedule(at: due) { [self] in
                hub.lock.withLock {
                    guard directIdle, let directStart, directStart.at == due else { return }
                    self.directStart = nil
                    startTaskWhenDueLocked()
                }
            })
            return
        }
        if let directStart {
            deadlines.cancel(directStart.ticket)
            self.directStart = nil
        }
        // From now on a task reads (it may take a while).
        directIdle = false
        waiterWantsAnyOutput = true
        direct?.stream(Execution(output: self))
    }

    private struct DirectDelivery {
        let end: @Sendable (Result<[ExecutionEvent], KernelError>) -> Void
        let events: Result<[ExecutionEvent], KernelError>
        let parkedTask: CheckedContinuation<Void, Never>?
        let otherParkedTasks: [CheckedContinuation<Void, Never>]
    }

    // MARK: Reader side

    /// The caller stopped reading: drop queued and later output so writers never wait for it,
    /// and tell the engine (an open input request can no longer be answered).
    func abandon() {
        let first = hub.lock.withLock {
            hub.collectStagedLocked()
            defer { abandoned = true }
            if !abandoned && outcome == nil { recordUnreadLocked() }
            queue.removeAll()
            hub.lock.broadcast()
            return !abandoned
        }
        if first { onReaderGone(self, false) }
    }

    /// The task reading the events was cancelled: a run still queued is withdrawn (and completes
    /// `interrupted`, which the reader then gets); a run in progress goes on.
    func readerCancelled() {
        guard !hasOutcome.load(ordering: .acquiring) else { return }
        onReaderGone(self, true)
    }

    /// When the run ends within `budget`: all its remaining events, taken now, without suspending
    /// (the last one `.completed`), or the error it failed with. `nil` (nothing taken) otherwise.
    /// Busy-waits for `budget`: only for threads the caller owns (see
    /// ``Execution/eventsIfFinished(within:)``).
    func takeAllIfFinished(within budget: Duration) -> Result<[ExecutionEvent], KernelError>? {
        Spin.briefly(for: budget) { hasOutcome.load(ordering: .acquiring) }
        return hub.lock.withLock {
            guard outcome != nil else { return nil }
            return takeAllLocked()
        }
    }

    /// Every event not yet taken of a run that has ended.
    private func takeAllLocked() -> Result<[ExecutionEvent], KernelError> {
        var events: [ExecutionEvent] = []
        // The queued chunks, a character left over per stream and the end: one allocation.
        events.reserveCapacity(queue.chunkCount + 3)
        while true {
            switch nextStepLocked() {
            case .event(let event): events.append(event)
            case .failure(let error): return .failure(error)
            case .end, .wait: return .success(events)
            }
        }
    }

    private enum Step {
        case event(ExecutionEvent)
        case failure(KernelError)
        case end
        case wait(until: ContinuousClock.Instant?)
    }

    /// The next event, suspending (never blocking or spinning: this runs on Swift's cooperative
    /// pool) until there is one.
    func nextEvent() async throws(KernelError) -> ExecutionEvent? {
        while true {
            let step = hub.lock.withLock {
                let step = nextStepLocked()
                switch step {
                case .event, .failure: readerTookEvent = true
                case .end, .wait: break
                }
                return step
            }
            switch step {
            case .event(let event): return event
            case .failure(let error): throw error
            case .end: return nil
            case .wait(let deadline): await waitForOutput(until: deadline)
            }
        }
    }

    private func nextStepLocked() -> Step {
        hub.collectStagedLocked()
        if let oldest = queue.oldestWrite {
            guard isDueLocked(oldest) else { return .wait(until: dueTimeLocked(oldest)) }
            let chunk = queue.popFirst(maxBytes: Self.maxChunkBytes)!
            lastHandout = .now
            hub.lock.broadcast()
            if let result = chunk.result { return .event(.result(result)) }
            if let input = chunk.input { return .event(.inputRequest(input)) }
            // Output taken once the run has ended was recorded with its end.
            if !hasEndedLocked { chunk.bytes.withUnsafeBytes { recordLocked(chunk.stream, $0) } }
            let text = decode(chunk.stream, chunk.bytes, final: hasEndedLocked && queue.isEmpty)
            return text.isEmpty ? nextStepLocked() : .event(.output(OutputChunk(stream: chunk.stream, text: text)))
        }
        guard let outcome else { return .wait(until: nil) }
        if !partialStdout.isEmpty { return .event(.output(OutputChunk(stream: .stdout, text: decode(.stdout, [], final: true)))) }
        if !partialStderr.isEmpty { return .event(.output(OutputChunk(stream: .stderr, text: decode(.stderr, [], final: true)))) }
        if outcomeDelivered { return .end }
        outcomeDelivered = true
        switch outcome {
        case .completed(let result): return .event(.completed(result))
        case .failed(let error): return .failure(error)
        }
    }

    /// Decodes UTF-8, keeping a character split across writes for the next chunk of its stream.
    private func decode(_ stream: OutputStreamName, _ bytes: [UInt8], final: Bool) -> String {
        stream == .stdout ? Self.decode(bytes, final: final, partial: &partialStdout) : Self.decode(bytes, final: final, partial: &partialStderr)
    }

    /// Decodes `partial` (a character's first bytes left over) followed by `bytes`; unless
    /// `final`, an incomplete character at the end is left in `partial`.
    private static func decode(_ bytes: [UInt8], final: Bool, partial: inout [UInt8]) -> String {
        guard !partial.isEmpty else {
            // The usual case: no character left over from the previous chunk, so no copy to join one.
            let complete = final ? bytes.count : UTF8Text.completePrefixLength(bytes)
            if complete < bytes.count { partial = Array(bytes[complete...]) }
            return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[..<complete]), as: UTF8.self) }
        }
        var data = partial
        partial = []
        data.append(contentsOf: bytes)
        if !final {
            let complete = UTF8Text.completePrefixLength(data)
            if complete < data.count {
                partial = Array(data[complete...])
                data.removeSubrange(complete...)
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func waitForOutput(until deadline: ContinuousClock.Instant?) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let token: Int? = hub.lock.withLock {
                if case .wait(let current) = peekLocked(), current == deadline {
                    if waiter == nil {
                        waiter = continuation
                        waiterWantsAnyOutput = deadline == nil
                    } else {
                        // Another task iterates a copy of the execution at the same time.
                        otherWaiters.append(continuation)
                        waiterWantsAnyOutput = waiterWantsAnyOutput || deadline == nil
                    }
                    waiterToken += 1
                    return waiterToken
                }
                continuation.resume()
                return nil
            }
            guard let token, let deadline else { return }
            // The engine's own timer thread, not a task or a Dispatch timer: it fires even while the
            // concurrency pool or Dispatch's workers are saturated.
            deadlines.schedule(at: deadline) { [self] in
                hub.lock.withLock {
                    guard waiterToken == token, waiter != nil else { return }
                    resumeWaitersLocked()
                }
            }
        }
    }

    /// Whether queued output (the oldest written at `oldest`) should be handed out now.
    private func isDueLocked(_ oldest: ContinuousClock.Instant) -> Bool {
        hasEndedLocked || queue.byteCount >= Self.flushBytes || queue.chunkCount > 1 || queue.headIsResult
            || ContinuousClock.now >= dueTimeLocked(oldest)
    }

    /// When queued output (the oldest written at `oldest`) is due if nothing else comes: at the
    /// end of the coalescing window, or once flushed (no sooner than ``flushSpacing`` after the
    /// last hand-out).
    private func dueTimeLocked(_ oldest: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let windowEnd = oldest + coalescingWindow
        guard queue.flushRequested else { return windowEnd }
        return min(windowEnd, lastHandout.map { $0 + Self.flushSpacing } ?? oldest)
    }

    /// Whether the reader would wait now (and until when), without taking anything.
    private func peekLocked() -> Step {
        hub.collectStagedLocked()
        if let oldest = queue.oldestWrite {
            return isDueLocked(oldest) ? .end : .wait(until: dueTimeLocked(oldest))
        }
        return !hasEndedLocked ? .wait(until: nil) : .end
    }
}
