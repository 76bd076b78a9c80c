import Foundation
import JSONRPC
import Logging
import PyKernelSupport
import Synchronization

/// Outgoing protocol lines, written in order by a thread the server owns, in bounded queues.
///
/// **Lanes.** Lines go to one of two lanes. The *control* lane carries the answers of requests
/// that sent no notifications (`kernel.info`, `context.list`, errors, ...); the *stream* lane
/// carries notifications and the responses that follow them. The writer thread writes every
/// queued control line before the next stream lines (and takes at most ``Limits/streamBatchBytes``
/// of stream lines at a time), so control answers overtake a flood of `code.output`. Within a lane
/// lines keep their order; a request's notifications and response share a lane, so they stay in
/// order.
///
/// **Bounds.** Each lane holds at most its cap in bytes, counting the lines being written (a line
/// larger than the cap is admitted alone into an empty lane). Producers wait for room instead of
/// growing memory: tasks suspend (``send(_:lane:whenQueued:)``), and the threads the server owns
/// block: the request reader (``batch(_:)``), the interpreter thread at a run's end and the
/// threads reading process contexts' workers (``sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``).
/// Nothing blocks Swift's cooperative pool: `write(2)` happens only on the writer thread, or on
/// one of those threads when both lanes are empty and no thread writes (the fast path of an
/// answer ready at once, which saves the writer's wake-up).
/// ``sendWithoutWaiting(_:)`` is the one exemption from the caps, for broadcasts such as
/// `session.exited` (one small line per finished command, from callers that must not stall).
final class MessageChannel: @unchecked Sendable {  // every stored var is guarded by `lock`
    enum Lane: Sendable { case control, stream }

    /// The caps of the lanes.
    struct Limits: Sendable {
        /// Bytes the control lane holds.
        var controlBytes = 1 << 20
        /// Bytes the stream lane holds.
        var streamBytes = 8 << 20
        /// Bytes of stream lines the writer takes at a time (at least one line), so control lines
        /// queued meanwhile wait for at most that much.
        var streamBatchBytes = 256 << 10
        /// When the output is a pipe, the size it is given if smaller (Linux's default is 64 KiB),
        /// so that a large notification or response reaches the client in a few `write(2)` calls
        /// and wake-ups instead of one per 64 KiB. As much as one batch of stream lines: a control
        /// answer then waits behind at most the pipe's contents and one batch. `nil`: the pipe is
        /// left as it is.
        var pipeBytes: Int32? = 256 << 10
        /// Bytes of run answers held while more runs wait (see ``MessageChannel/sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``).
        var heldBytes = 16 << 10
        /// How long the first held answer may wait for the others.
        var heldDelay = Duration.microseconds(500)
    }

    /// A task waiting for room in a lane, with the (framed) line it will queue.
    private struct SpaceWaiter {
        let line: [UInt8]
        let whenQueued: @Sendable () -> Void
        let continuation: CheckedContinuation<Void, Never>
    }

    /// One lane's queue: framed lines waiting for the writer, and the bytes it holds.
    private struct Queue {
        private var lines: [[UInt8]] = []
        private var head = 0
        /// Bytes queued or being written.
        var bytes = 0
        var waiters: [SpaceWaiter] = []

        var isEmpty: Bool { head == lines.count }

        mutating func append(_ line: [UInt8]) {
            lines.append(line)
            bytes += line.count
        }

        /// Removes lines from the front: all of them, or (with `limit`) at least one and no more
        /// than `limit` bytes. The bytes stay counted until the writer has written them. The queue lets go of
        /// each line taken (a lane that never empties must not keep every line it has written).
        mutating func take(upTo limit: Int = .max, into batch: inout [[UInt8]]) -> Int {
            var taken = 0
            while head < lines.count, taken == 0 || taken + lines[head].count <= limit {
                taken += lines[head].count
                batch.append(lines[head])
                lines[head] = []
                head += 1
            }
            if head == lines.count {
                lines.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024, head * 2 > lines.count {
                lines.removeFirst(head)
                head = 0
            }
            return taken
        }

        /// Whether a line of `count` bytes fits under `cap` (an empty lane takes any line), and no
        /// task waits ahead of it.
        func admits(_ count: Int, cap: Int, waitersFirst: Bool = true) -> Bool {
            (waiters.isEmpty || !waitersFirst) && (bytes == 0 || bytes + count <= cap)
        }
    }

    let limits: Limits
    private let fileDescriptor: Int32
    private let writer: LineWriter
    private let logger: Logger
    /// Whether the loss of the output has been logged (once).
    private var reportedClosed = false
    private let lock = ConditionLock()
    private var control = Queue()
    private var stream = Queue()
    /// Whether a thread is writing (the writer thread, or the reader thread's fast path).
    private var writing = false
    /// Lines of the reader thread's current ``batch(_:)``, and that thread.
    private var batchLines: [UInt8] = []
    private var batchOwner: pthread_t?
    /// A unit for the stream lane joined the current batch while stream lines were queued (a
    /// run's end on the reader thread, its notifications still queued): the batch goes after them.
    private var batchFollowsStream = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private var peaks = (control: 0, stream: 0)
    private var controlEnqueued = 0
    /// A line that goes out with the next write of any thread (see ``holdForNextWrite(_:whenQueued:)``).
    private let rider = Rider()
    /// Units held while more runs wait (``sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``):
    /// the next write of any thread starts with them.
    private var held: [UInt8] = []
    /// The held units are due: the writer thread writes them even with both lanes empty.
    private var heldDue = false
    /// When the oldest held unit was held (the writer thread writes it ``Limits/heldDelay`` later).
    private var heldSince: ContinuousClock.Instant?

    /// The most bytes each lane has held (for tests and diagnostics).
    var peakBytes: (control: Int, stream: Int) { lock.withLock { peaks } }
    /// How many times lines were queued in the control lane (for tests: an answer was queued).
    var controlEnqueueCount: Int { lock.withLock { controlEnqueued } }

    init(fileDescriptor: Int32, limits: Limits = Limits(), logger: Logger) {
        self.limits = limits
        self.logger = logger
        self.fileDescriptor = fileDescriptor
        writer = LineWriter(fileDescriptor: fileDescriptor)
        Self.enlargePipe(fileDescriptor, to: limits.pipeBytes, logger: logger)
        let thread = Thread { [self] in writeLoop() }
        thread.name = "pykernel-protocol-writer"
        thread.start()
    }

    /// Linux's `F_SETPIPE_SZ` and `F_GETPIPE_SZ` (not exported to Swift).
    private static let (setPipeSize, getPipeSize): (Int32, Int32) = (1031, 1032)

    /// When the output is a pipe smaller than `bytes`, enlarges it (best effort: a smaller pipe
    /// only costs more wake-ups).
    private static func enlargePipe(_ descriptor: Int32, to bytes: Int32?, logger: Logger) {
        var status = stat()
        guard let bytes, fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFIFO,
            fcntl(descriptor, getPipeSize) < bytes
        else { return }
        if fcntl(descriptor, setPipeSize, bytes) < 0 {
            logger.debug("the protocol output pipe stays at its size: \(String(cString: strerror(errno)))")
        }
    }

    /// Whether nothing written reaches anybody any more: a write failed (the client closed its
    /// end, `EPIPE`), or the output is a pipe or socket whose reading end is closed (`poll`
    /// reports an error or a hang-up on it), which a server with nothing to write learns this way.
    var isGone: Bool {
        if writer.isClosed { return true }
        var descriptor = pollfd(fd: fileDescriptor, events: 0, revents: 0)
        return poll(&descriptor, 1, 0) > 0 && descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
    }

    // MARK: Producers

    /// Queues a line in `lane`, suspending while the lane is full. `whenQueued` runs as the line
    /// is queued, under the channel's lock (so a ``flush()`` that starts after it sees the line).
    func send(_ line: consuming [UInt8], lane: Lane, whenQueued: @escaping @Sendable () -> Void = {}) async {
        let framed = Self.framed(line)
        let queued: Bool = lock.withLock {
            guard queue(lane).admits(framed.count, cap: cap(lane)) else { return false }
            whenQueued()
            enqueueLocked(framed, lane)
            return true
        }
        if queued { return }
        await withCheckedContinuation { continuation in
            lock.withLock {
                // Room may have been made in between; the waiter list keeps arrival order.
                if queue(lane).admits(framed.count, cap: cap(lane)) {
                    whenQueued()
                    enqueueLocked(framed, lane)
                    continuation.resume()
                } else {
                    modifyQueue(lane) { $0.waiters.append(SpaceWaiter(line: framed, whenQueued: whenQueued, continuation: continuation)) }
                }
            }
        }
    }

    /// Queues a line in the stream lane without waiting, past the cap if need be: for broadcasts
    /// (one small line per event, from callers that must not stall).
    func sendWithoutWaiting(_ line: consuming [UInt8]) {
        let framed = Self.framed(line)
        lock.withLock { enqueueLocked(framed, .stream) }
    }

    /// Runs `body` on the reader thread, collecting the lines it sends with ``sendNow(_:framed:whenQueued:)``,
    /// then queues them as one unit in the control lane (written in one `write(2)`, so a client
    /// wakes once for a request's notifications and response). Blocks while the control lane is
    /// full; writes on this thread when both lanes are empty and the writer is idle. A batch that
    /// a stream unit joined while stream lines were queued (``sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``:
    /// a process run ended by `context.delete`, its last notifications still queued) goes to the
    /// stream lane instead, after them, at once: a run's response never overtakes its notifications.
    func batch<T>(_ body: () -> T) -> T {
        lock.withLock { batchOwner = pthread_self() }
        let value = body()
        lock.lock()
        batchOwner = nil
        let followsStream = batchFollowsStream
        batchFollowsStream = false
        guard !batchLines.isEmpty else {
            lock.unlock()
            return value
        }
        let lines = batchLines
        batchLines = []
        if control.isEmpty, stream.isEmpty, !writing {
            writeOnThisThreadLocked(lines)
            lock.unlock()
            return value
        }
        if followsStream, !stream.isEmpty {
            // Behind the stream lines queued before (a run's notifications, then its response in
            // this batch), at once: a small unit, which the control lane would have taken too.
            enqueueLocked(lines, .stream)
            lock.unlock()
            return value
        }
        while !control.admits(lines.count, cap: limits.controlBytes, waitersFirst: false) { lock.wait() }
        enqueueLocked(lines, .control)
        lock.unlock()
        return value
    }

    /// Sends a line at once: inside the calling thread's ``batch(_:)``, adds it to the batch;
    /// elsewhere queues it like ``sendWithoutWaiting(_:)``. `whenQueued` runs under the lock.
    func sendNow(_ line: [UInt8], framed: Bool = false, whenQueued: () -> Void = {}) {
        lock.withLock {
            whenQueued()
            if let owner = batchOwner, pthread_equal(owner, pthread_self()) != 0 {
                batchLines.append(contentsOf: line)
                if !framed { batchLines.append(0x0A) }
            } else {
                enqueueLocked(framed ? line : Self.framed(line), .stream)
            }
        }
    }

    /// Sends a request's last lines (`unit`: its notifications, then its response, each ended by
    /// its newline, as ``RPCUnit`` writes them) as one unit from the thread where its work ended
    /// (the interpreter thread at a run's end), without a task: inside this thread's
    /// ``batch(_:)`` they join the batch (which then follows the stream lines queued, for a
    /// stream unit); when both lanes are empty and no thread writes, they are
    /// written on this thread (saving the writer's wake-up); else they are queued in `lane`,
    /// waiting while it is full. A caller on Swift's cooperative pool, which must not block,
    /// passes `mayWait: false`: its unit is queued at once, past the cap if need be (as a
    /// broadcast is). `whenQueued` runs under the lock first.
    ///
    /// With `roomPastCap`, the calling thread's wait stays one that can be cut short: the unit is
    /// never written on this thread (a `write(2)` to a client that does not read blocks where
    /// nothing wakes it), and the lane may hold `roomPastCap()` bytes past its cap for it, read
    /// under the lock each time the thread is woken (``wakeWaitingThreads()`` wakes it when that
    /// grows). A process-context run asked to stop lets its worker's answer through this way.
    ///
    /// With `yieldAfterWrite`, a unit written on this thread is followed by `sched_yield`: a pipe's
    /// reader is woken on the writer's processor (a synchronous wake-up), so the client would
    /// otherwise read its response only after this thread's remaining work (~40 µs at a run's
    /// end, running cold). For a thread with nothing else waiting (a run's end with no run queued).
    ///
    /// With `hold` (a run's end while more runs wait: a client that pipelines), a unit that would
    /// be written on this thread is held instead, for the next write of any thread (the end of the
    /// last run that waits, usually), so that the client reads many answers per wake-up and this
    /// thread makes one `write(2)` for them. Held units are written once they reach
    /// ``Limits/heldBytes``, or by the writer thread ``Limits/heldDelay`` after the first (a
    /// long run after quick ones does not hold their answers back).
    func sendUnit(_ unit: consuming [UInt8], lane: Lane, mayWait: Bool, roomPastCap: (() -> Int)? = nil,
                  yieldAfterWrite: Bool = false, hold: Bool = false,
                  whenQueued: () -> Void) {
        let unit = consume unit
        lock.lock()
        if let owner = batchOwner, pthread_equal(owner, pthread_self()) != 0 {
            whenQueued()
            // A stream unit (a response after notifications) must not overtake the stream lines
            // queued before it, as the batch's control lane would.
            if lane == .stream, !stream.isEmpty { batchFollowsStream = true }
            batchLines.append(contentsOf: unit)
            lock.unlock()
            return
        }
        if mayWait, roomPastCap == nil, control.isEmpty, stream.isEmpty, !writing {
            whenQueued()
            if hold, held.count + unit.count < limits.heldBytes {
                if held.isEmpty {
                    heldSince = .now
                    lock.broadcast()  // the writer thread waits until the held units are due
                }
                held.append(contentsOf: unit)
                lock.unlock()
                return
            }
            writeOnThisThreadLocked(unit)
            lock.unlock()
            if yieldAfterWrite { sched_yield() }
            return
        }
        while mayWait, !queue(lane).admits(unit.count, cap: cap(lane) + (roomPastCap?() ?? 0), waitersFirst: false) { lock.wait() }
        whenQueued()
        enqueueLocked(unit, lane)
        lock.unlock()
    }

    /// Wakes the threads waiting for room in ``sendUnit(_:lane:mayWait:roomPastCap:yieldAfterWrite:hold:whenQueued:)``,
    /// to read their `roomPastCap` again.
    func wakeWaitingThreads() {
        lock.withLock { lock.broadcast() }
    }

    /// Holds a line that may wait a little for company: the answer of `code.interrupt`, which the
    /// run's response usually follows within a few hundred µs. The line goes out with the next
    /// write of whatever thread writes first (the run's end on the interpreter thread, the writer
    /// two). Hold it before starting what will be written (the signal), then call
    /// ``sendHeldLine()`` when it has waited long enough. `whenQueued` runs under the channel's
    /// lock as the line is taken. One line at a time (the request reader's), given with its newline.
    func holdForNextWrite(_ framedLine: [UInt8], whenQueued: @escaping @Sendable () -> Void) {
        rider.hold(framedLine, whenQueued: whenQueued)
    }

    /// Ends the hold: if no write has taken the held line, sends it now like
    /// ``sendNow(_:framed:whenQueued:)`` (in the calling thread's ``batch(_:)``, if any).
    func sendHeldLine() {
        guard let (line, whenQueued) = rider.release() else { return }
        sendNow(line, framed: true, whenQueued: whenQueued)
    }

    /// Writes framed `bytes` on the calling thread while both lanes are empty and nobody writes
    /// (saving the writer thread's wake-up). Called and returns with the lock held; releases it
    /// while writing.
    private func writeOnThisThreadLocked(_ bytes: [UInt8]) {
        var bytes = bytes
        if !held.isEmpty {
            bytes = held + bytes
            held = []
            heldDue = false
            heldSince = nil
        }
        if let batched = takeOtherThreadsBatchLocked() { bytes = batched + bytes }
        let riding = rider.take()
        if let riding { bytes.append(contentsOf: riding) }
        writing = true
        lock.unlock()
        let written = writer.writeFramed(bytes)
        lock.lock()
        writing = false
        if !written { reportClosedLocked() }
        // Wake the writer thread only for lines queued meanwhile (a wake-up costs the round trip).
        if !control.isEmpty || !stream.isEmpty { lock.broadcast() }
        resumeDrainWaitersIfIdleLocked()
    }

    /// Waits until every queued line has been written.
    func flush() async {
        await withCheckedContinuation { continuation in
            lock.withLock {
                if isIdleLocked {
                    continuation.resume()
                } else {
                    drainWaiters.append(continuation)
                    if !held.isEmpty { releaseHeldLocked() }
                }
            }
        }
    }

    /// Wakes the writer thread to write the held units.
    private func releaseHeldLocked() {
        heldDue = true
        if !writing { lock.broadcast() }
    }

    // MARK: Writer thread

    private func writeLoop() {
        lock.lock()
        while true {
            while writing || (control.isEmpty && stream.isEmpty && !(heldDue && !held.isEmpty)) {
                // Held units are due `heldDelay` after the first: this thread is their timer.
                if !writing, let heldSince, !held.isEmpty {
                    let due = heldSince + limits.heldDelay
                    if ContinuousClock.now >= due {
                        heldDue = true
                    } else {
                        lock.wait(timeout: due - .now)
                    }
                } else {
                    lock.wait()
                }
            }
            var lines: [[UInt8]] = []
            if !held.isEmpty {
                lines.append(held)  // held before anything now queued
                held = []
            }
            heldDue = false
            heldSince = nil
            let controlTaken = control.take(into: &lines)
            let streamTaken = stream.take(upTo: limits.streamBatchBytes, into: &lines)
            let riding = rider.take()
            if let riding { lines.append(riding) }
            writing = true
            lock.unlock()
            let written = writer.writeFramed(lines: lines)
            lock.lock()
            writing = false
            if !written { reportClosedLocked() }
            control.bytes -= controlTaken
            stream.bytes -= streamTaken
            admitWaitersLocked(.control)
            admitWaitersLocked(.stream)
            lock.broadcast()  // a reader thread waiting for room in the control lane
            resumeDrainWaitersIfIdleLocked()
        }
    }

    // MARK: Helpers (lock held)

    /// Logs, once, that writing failed (the client closed its end): later lines are dropped.
    private func reportClosedLocked() {
        guard !reportedClosed else { return }
        reportedClosed = true
        logger.error("writing to the protocol output failed (\(String(cString: strerror(errno)))); responses and notifications are dropped from now on")
    }

    private func enqueueLocked(_ framed: [UInt8], _ lane: Lane) {
        if let batched = takeOtherThreadsBatchLocked() {
            // Where the batch would have gone: behind the queued stream lines when a run's
            // response in it follows them (``batch(_:)``), else the control lane.
            if batchFollowsStream, !stream.isEmpty {
                stream.append(batched)
            } else {
                control.append(batched)
                controlEnqueued += 1
            }
        }
        switch lane {
        case .control:
            control.append(framed)
            controlEnqueued += 1
            peaks.control = max(peaks.control, control.bytes)
        case .stream:
            stream.append(framed)
            peaks.stream = max(peaks.stream, stream.bytes)
        }
        if !writing { lock.broadcast() }
    }

    /// The lines another thread's open ``batch(_:)`` has collected (taken from it), for a line
    /// this thread sends now to go after them, in the lane where the batch would have put them:
    /// what the reader answered (the `{}` of a `code.input`) precedes what that answer
    /// caused (the run's response, from the interpreter thread the answer woke). `nil` if none.
    private func takeOtherThreadsBatchLocked() -> [UInt8]? {
        guard !batchLines.isEmpty, let owner = batchOwner, pthread_equal(owner, pthread_self()) == 0 else { return nil }
        defer { batchLines = [] }
        return batchLines
    }

    /// Queues the lines of waiting tasks, in arrival order, while they fit.
    private func admitWaitersLocked(_ lane: Lane) {
        var admitted = 0
        let waiters = queue(lane).waiters
        for waiter in waiters {
            guard queue(lane).admits(waiter.line.count, cap: cap(lane), waitersFirst: false) else { break }
            waiter.whenQueued()
            enqueueLocked(waiter.line, lane)
            waiter.continuation.resume()
            admitted += 1
        }
        if admitted > 0 { modifyQueue(lane) { $0.waiters.removeFirst(admitted) } }
    }

    private var isIdleLocked: Bool {
        !writing && control.isEmpty && stream.isEmpty && control.waiters.isEmpty && stream.waiters.isEmpty && held.isEmpty
    }

    private func resumeDrainWaitersIfIdleLocked() {
        guard isIdleLocked, !drainWaiters.isEmpty else { return }
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters = []
    }

    private func queue(_ lane: Lane) -> Queue { lane == .control ? control : stream }

    private func modifyQueue(_ lane: Lane, _ body: (inout Queue) -> Void) {
        switch lane {
        case .control: body(&control)
        case .stream: body(&stream)
        }
    }

    private func cap(_ lane: Lane) -> Int { lane == .control ? limits.controlBytes : limits.streamBytes }

    /// One line waiting to ride along with the next write.
    /// Lock order: the channel's lock, then the rider's.
    private final class Rider: Sendable {
        private struct State {
            var line: [UInt8]?
            var whenQueued: @Sendable () -> Void = {}
        }
        private let state = Mutex(State())
        /// Whether a line is held: writers test it without the lock on every write.
        private let pending = Atomic<Bool>(false)

        /// Holds `line` for the next write.
        func hold(_ line: [UInt8], whenQueued: @escaping @Sendable () -> Void) {
            state.withLock { state in
                precondition(state.line == nil, "one held line at a time (only the request reader holds one)")
                state = State(line: line, whenQueued: whenQueued)
                pending.store(true, ordering: .releasing)
            }
        }

        /// Ends the hold: `nil` if a writer has taken the line, else the line given back, with its
        /// `whenQueued`. Waits for nothing (the holder is never woken by a write).
        func release() -> (line: [UInt8], whenQueued: @Sendable () -> Void)? {
            state.withLock { state in
                pending.store(false, ordering: .releasing)
                defer { state = State() }
                return state.line.map { ($0, state.whenQueued) }
            }
        }

        /// The held line, taken by a thread about to write (the channel's lock held): `whenQueued`
        /// has run. `nil` when no line is held.
        func take() -> [UInt8]? {
            guard pending.load(ordering: .acquiring) else { return nil }
            return state.withLock { state in
                guard let line = state.line else { return nil }
                pending.store(false, ordering: .releasing)
                state.whenQueued()
                state = State()
                return line
            }
        }
    }

    /// The line with its newline, appended in place (the line is consumed: no copy of a long
    /// line when its buffer has room for one more byte).
    private static func framed(_ line: consuming [UInt8]) -> [UInt8] {
        var framed = consume line
        framed.append(0x0A)
        return framed
    }
}
