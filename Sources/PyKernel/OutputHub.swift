import Foundation
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// Where every byte user code writes goes: the run in progress, or, between runs, a held buffer
/// handed to the next run of the context that ran last (output of background threads).
///
/// Python-level writes (`print`, `sys.stdout.write`) arrive through native stream functions;
/// file-descriptor-level writes (subprocesses, `os.write(1, ...)`, C `printf`) arrive through pipes
/// installed on descriptors 1 and 2 when capture is on. One lock orders both, so output keeps the
/// order in which it was written. There is one hub per process (in ``EmbeddedRuntime``), as there
/// is one interpreter.
final class OutputHub: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: writers wait on its condition

    /// Unread bytes a run (or the held buffer) may queue before writers wait.
    static let capacity = 1 << 20
    /// The most bytes of one Python-level write taken at a time: a longer write (one 100 MB
    /// `sys.stdout.write`) is queued in pieces of this size as the reader makes room, so the queue
    /// never holds much more than ``capacity``, whatever the size of a write.
    static let writePiece = 64 << 10

    let lock = ConditionLock()
    /// Set by the audit hook when user code starts a process: from then on, Python-level writes
    /// first collect what is waiting in the descriptor pipes, so a subprocess's output the code
    /// waited for is ordered before the code's next `print`.
    let descriptorActivity = Atomic<Bool>(false)

    // Guarded by `lock`.
    @exclusivity(unchecked) private var active: RunOutput? {
        didSet { activeReference = active.map { Unmanaged.passUnretained($0) } }
    }
    /// `active`, for the write path to call without retaining and releasing it (`active` keeps
    /// it alive while it is set; both change only under `lock`).
    @exclusivity(unchecked) private var activeReference: Unmanaged<RunOutput>?
    /// Output written between runs, per context: it goes to the context that ran last.
    @exclusivity(unchecked) private var held: [ContextID: ChunkQueue] = [:]
    @exclusivity(unchecked) private var lastContext: ContextID?
    /// When each live context other than `lastContext` that has run stopped being the last (a
    /// count of such hand-overs): when the last one is deleted, output between runs goes to the
    /// live context that ran most recently before it, not nowhere (a process context's worker
    /// deletes the scratch context of its warm-up run, which may come after the context's run).
    @exclusivity(unchecked) private var ranBefore: [ContextID: UInt64] = [:]
    @exclusivity(unchecked) private var handOvers: UInt64 = 0
    /// The contexts that exist: output of threads started by a deleted context is dropped. Only
    /// live contexts are tracked (none is remembered after its deletion), so it stays as small as
    /// the set of contexts.
    @exclusivity(unchecked) private var liveContexts: Set<ContextID> = [.default]
    /// Set while a deleted context's namespace is freed (``droppingInterpreterOutput(_:)``): what the
    /// interpreter thread writes is dropped instead of held for the context that ran last.
    @exclusivity(unchecked) private var dropsInterpreterOutput = false
    @exclusivity(unchecked) private var capturePipes: [(descriptor: Int32, stream: OutputStreamName)] = []
    /// The capture pipes' write ends, kept by the engine (close-on-exec, spared from the code's
    /// `os.close`): a pipe whose descriptor 1 or 2 the code closed keeps a writer (no hang-up for
    /// the reader to spin on), and ``putBackStandardDescriptors()`` puts the descriptor back on
    /// it. Set once, before any run.
    @exclusivity(unchecked) private var captureWriteEnds: [StandardDescriptorCopy] = []
    /// `captureWriteEnds` and what descriptor 0 was when the capture started (the server's
    /// /dev/null), kept the same way: what a run's end puts back. Set once, before any run.
    @exclusivity(unchecked) private var standardDescriptors: [StandardDescriptorCopy] = []
    /// Capture pipes given to the processes a context's code started in a run (see
    /// ``processStarting()``), by read end: what those processes write later goes to that context,
    /// never into another context's run. Closed when every writer is gone, or with the context.
    @exclusivity(unchecked) private var ownedPipes: [Int32: OwnedPipe] = [:]
    /// The order of the next pipe put in ``ownedPipes`` (see ``OwnedPipe/order``).
    @exclusivity(unchecked) private var nextPipeOrder: UInt64 = 0
    /// Contexts whose held output is full: the reader leaves their pipes unread (their writers
    /// wait) until their next run takes it, instead of waiting on them with every pipe unread.
    @exclusivity(unchecked) private var pausedContexts: Set<ContextID> = []
    /// Read ends of deleted contexts' pipes, closed by the reader thread (which may be polling them).
    @exclusivity(unchecked) private var closingDescriptors: [Int32] = []
    /// Changes whenever the set of pipes to read changes (the reader then polls the new set).
    @exclusivity(unchecked) private var pipeSetVersion = 0
    /// Bytes read from the descriptor pipes so far (wrapping): the reader thread compares it
    /// before and after a pass to see how fast output arrives.
    @exclusivity(unchecked) private(set) var descriptorBytesRead = 0
    /// The thread that runs code: set as a run begins.
    @exclusivity(unchecked) private var interpreterThread: pthread_t?
    /// A pipe that wakes the reader thread when the set of pipes changes (read end, write end).
    @exclusivity(unchecked) private var readerWake: (read: Int32, write: Int32) = (-1, -1)
    /// Short writes of the interpreter thread to the run in progress, taken without the lock
    /// while armed; moved into the run before anything else touches its output.
    private let stage = InterpreterStage()
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Linux's `F_SETPIPE_SZ` (not exported to Swift): a bigger pipe means fewer wake-ups.
    static let setPipeSize: Int32 = 1031

    /// `descriptor` moved to a number above 2 (close-on-exec; -1 when none is left): a pipe the
    /// engine opens while the code has closed descriptor 0, 1 or 2 would otherwise take that
    /// number, and the engine's end there could not be put back on its pipe or file (a later
    /// run's writes to descriptor 1 failed: a read end).
    static func aboveStandardDescriptors(_ descriptor: Int32) -> Int32 {
        guard descriptor <= STDERR_FILENO else {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            return descriptor
        }
        let moved = fcntl(descriptor, F_DUPFD_CLOEXEC, STDERR_FILENO + 1)
        close(descriptor)
        return moved
    }

    // MARK: Runs

    /// Makes `run` the destination of all output, after the output held for its context.
    func begin(_ run: RunOutput, context: ContextID) {
        descriptorActivity.store(false, ordering: .relaxed)
        lock.withLock {
            active = run
            interpreterThread = pthread_self()
            if pausedContexts.remove(context) != nil { pipeSetChangedLocked() }
            if let queue = held.removeValue(forKey: context) {
                while let chunk = queue.popFirst() {
                    if let result = chunk.result {
                        run.acceptResultLocked(result)
                        continue
                    }
                    chunk.bytes.withUnsafeBytes { _ = run.acceptLocked(chunk.stream, $0, force: true) }
                }
                lock.broadcast()
            }
            if lastContext != context {
                if let previous = lastContext {
                    ranBefore[previous] = handOvers
                    handOvers += 1
                }
                ranBefore.removeValue(forKey: context)
                lastContext = context
            }
        }
    }

    /// Collects output still in flight (C stdio buffers, pipes) into the active run, then holds
    /// later output until the next run.
    func end() {
        fflush(nil)
        lock.withLock {
            collectStagedLocked()
            drainDescriptorsLocked()
            active = nil
        }
    }

    /// Puts descriptors 1 and 2 back on the capture pipes, and 0 on what it was, if the code of the
    /// run that ended closed or redirected them (one `fstat` each): before the next run, after
    /// this one's answer.
    func putBackStandardDescriptors() {
        for writeEnd in lock.withLock({ standardDescriptors }) where !writeEnd.isInPlace {
            // On a pipe the context's processes own (`processStarting`): expected, said nowhere.
            let expected = StandardDescriptorCopy.identity(of: writeEnd.target).map { identity in
                lock.withLock { ownedPipes.values.contains { $0.identity == identity } }
            } ?? false
            writeEnd.putBack(logger: expected ? nil : logger)
        }
    }

    /// User code is about to start a process (the audit hook): descriptor output may follow. A
    /// process the interpreter thread starts during a run gets two new pipes of that context's
    /// on descriptors 1 and 2 (``OwnedPipe``; the shared ones are put back after the run), so
    /// that what it writes once the run has ended goes to that context: into its run in progress,
    /// else held for its next run, and nowhere once it is deleted. Descriptors the code
    /// redirected elsewhere stay as they are; a thread's process gets its pipes through its spawn
    /// (``pipeForThreadProcess(of:target:)``).
    func processStarting() {
        descriptorActivity.store(true, ordering: .relaxed)
        let starting: (shared: [StandardDescriptorCopy], context: ContextID)? = lock.withLock {
            guard let active, let interpreterThread, pthread_equal(interpreterThread, pthread_self()) != 0 else { return nil }
            return (captureWriteEnds, active.context)
        }
        guard let starting else { return }
        for shared in starting.shared where shared.isInPlace {
            guard let (readEnd, owned) = OwnedPipe.make(for: shared.target, of: starting.context, logger: logger) else { return }
            lock.withLock {
                addOwnedPipeLocked(readEnd, owned)
                pipeSetChangedLocked()
            }
        }
    }

    /// A process that a thread of `context`'s code starts (off the interpreter thread: the
    /// runtime asks when the thread spawns, see `pykernel_runtime._context_pipes`) gets a
    /// new pipe of that context's for `target` (1 or 2) through its spawn, which puts the
    /// returned write end (close-on-exec) on `target` in the child only: descriptors 1 and 2 of
    /// this process stay as they are for the interpreter thread, whose run may be another
    /// context's. A deleted context's pipe has no reader (the process's writes fail, as those
    /// of the processes it started in its runs do). `nil` when `target` is not the engine's at
    /// the moment (the code redirected it: the process inherits that) or no pipe can be made.
    func pipeForThreadProcess(of context: ContextID, target: Int32) -> Int32? {
        descriptorActivity.store(true, ordering: .relaxed)
        let current = StandardDescriptorCopy.identity(of: target)
        let (engines, live): (Bool, Bool) = lock.withLock {
            guard let current, let shared = captureWriteEnds.first(where: { $0.target == target }) else { return (false, false) }
            return (shared.identity == current || ownedPipes.values.contains { $0.identity == current }, liveContexts.contains(context))
        }
        guard engines else { return nil }
        guard live else {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { return nil }
            close(ends[0])
            let writeEnd = Self.aboveStandardDescriptors(ends[1])
            return writeEnd >= 0 ? writeEnd : nil
        }
        guard let (readEnd, writeEnd, owned) = OwnedPipe.open(for: target, of: context, logger: logger) else { return nil }
        lock.withLock {
            addOwnedPipeLocked(readEnd, owned)
            pipeSetChangedLocked()
        }
        return writeEnd
    }

    /// Puts a pipe of a context's processes among those read, after every pipe made before it.
    private func addOwnedPipeLocked(_ readEnd: Int32, _ pipe: OwnedPipe) {
        var pipe = pipe
        pipe.order = nextPipeOrder
        nextPipeOrder += 1
        ownedPipes[readEnd] = pipe
    }

    /// The pipes of contexts' processes (of `context` only, if given) in the order they were
    /// made: a process's stdout before its stderr, whatever the dictionary's order (seeded per
    /// process, it read a subprocess's `echo e >&2` before its earlier `echo o` in some servers).
    private func ownedPipesInOrderLocked(of context: ContextID? = nil) -> [(readEnd: Int32, pipe: OwnedPipe)] {
        ownedPipes.lazy.filter { context == nil || $0.value.context == context }
            .map { (readEnd: $0.key, pipe: $0.value) }
            .sorted { $0.pipe.order < $1.pipe.order }
    }

    /// Starts keeping output of threads `context` starts (for its next run).
    func track(_ context: ContextID) {
        lock.withLock { _ = liveContexts.insert(context) }
    }

    /// Drops output held for a deleted context, and later output of its threads. Output between
    /// runs whose owner cannot be told (a thread's `os.write(1, ...)`) goes, when `context` ran
    /// last, to the live context that ran before it.
    func forget(_ context: ContextID) {
        lock.withLock {
            held.removeValue(forKey: context)
            liveContexts.remove(context)
            ranBefore.removeValue(forKey: context)
            if lastContext == context {
                lastContext = ranBefore.max { $0.value < $1.value }?.key
                if let lastContext { ranBefore.removeValue(forKey: lastContext) }
            }
            pausedContexts.remove(context)
            // Its processes' later writes fail (EPIPE) once the reader has closed the read ends.
            let owned = ownedPipes.filter { $0.value.context == context }.keys
            if !owned.isEmpty {
                for readEnd in owned { ownedPipes.removeValue(forKey: readEnd) }
                closingDescriptors += owned
                pipeSetChangedLocked()
            }
            lock.broadcast()
        }
    }

    /// Runs `body` (the freeing of a deleted context's namespace, on the interpreter thread)
    /// dropping what the interpreter thread writes meanwhile at the Python level: what the
    /// finalizers of the context's objects print, the `Exception ignored in` reports of their
    /// failures, their `display()` calls belong to the deleted context, which ends as a killed
    /// process does, not to the context that ran last. Output of other threads (with their
    /// owners, or none) and of descriptors 1 and 2 (which cannot be attributed) goes where it
    /// goes between runs. Between runs only.
    func droppingInterpreterOutput(_ body: () -> Void) {
        lock.withLock { dropsInterpreterOutput = true }
        body()
        lock.withLock { dropsInterpreterOutput = false }
    }

    /// How many contexts the hub keeps output for (the live ones).
    var trackedContextCount: Int { lock.withLock { liveContexts.count } }

    // MARK: Writers

    /// ``writeFromPython(_:_:owner:fromInterpreterThread:waiting:signalsPending:)`` for the interpreter thread: a short
    /// write right after an earlier one to the same stream of the run in progress is appended to
    /// the stage without the lock (see ``InterpreterStage``); any other takes the lock and arms
    /// the stage for the next. Holding the GIL.
    func writeFromInterpreterThread(
        _ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer,
        waiting wait: (() -> Void) -> Void, signalsPending: () -> Bool
    ) -> Bool {
        if bytes.count < ChunkQueue.longWrite, !descriptorActivity.load(ordering: .relaxed), stage.append(stream, bytes) {
            return true
        }
        return writeFromPython(stream, bytes, owner: nil, fromInterpreterThread: true, waiting: wait, signalsPending: signalsPending)
    }

    /// Appends bytes written by Python code. Holding the GIL; while the destination is full it waits
    /// with the GIL released. Returns `false` when a signal handler raised meanwhile (a stop).
    ///
    /// A write longer than ``writePiece`` is taken in pieces cut at character boundaries, each
    /// once there is room: other threads' writes (and descriptor output) may come between its
    /// pieces while it waits, as between the `write(2)` calls of a long write to a pipe.
    /// - Parameter owner: For a write from a thread user code started, the context whose code
    ///   started it: its output goes to that context (its run in progress, else held for its next
    ///   run), never into another context's run. `nil` for the interpreter thread.
    /// - Parameter fromInterpreterThread: Whether the caller is the interpreter thread (then
    ///   `owner` is `nil`): an accepted write then arms the stage for the next short write.
    func writeFromPython(
        _ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, owner: ContextID?, fromInterpreterThread: Bool = false,
        waiting wait: (() -> Void) -> Void, signalsPending: () -> Bool
    ) -> Bool {
        if descriptorActivity.load(ordering: .relaxed) {
            lock.withLock { drainDescriptorsLocked() }
        }
        var rest = bytes
        while true {
            let piece = rest.count <= Self.writePiece ? rest : Self.firstPiece(of: rest)
            // `lock()`/`unlock()` rather than the generic `withLock`, which is not specialized
            // across the module boundary (the path of every `print`).
            lock.lock()
            collectStagedLocked()
            // A write of a deleted context's finalizer is taken and dropped.
            let accepted = (fromInterpreterThread && dropsInterpreterOutput) || appendLocked(stream, piece, owner: owner)
            if accepted && fromInterpreterThread && activeReference != nil { stage.armLocked(for: stream) }
            lock.unlock()
            if accepted {
                if piece.count == rest.count { return true }
                rest = UnsafeRawBufferPointer(rebasing: rest[piece.count...])
                continue
            }
            wait { lock.withLock { if isFullLocked(owner: owner) { lock.wait(timeout: .milliseconds(10)) } } }
            if signalsPending() { return false }
        }
    }

    /// The code flushed a standard stream: the output written so far to the owner's run in
    /// progress (see ``writeFromPython(_:_:owner:fromInterpreterThread:waiting:signalsPending:)``),
    /// descriptor output included, is handed out now. Output held for a later run stays held.
    func flushFromPython(owner: ContextID?) {
        lock.lock()
        // A flush still pending covers what comes after it too (the reader collects it all): the
        // stage stays armed for the next print.
        if let run = runLocked(for: owner), !run.flushPendingLocked {
            collectStagedLocked()
            if descriptorActivity.load(ordering: .relaxed) { drainDescriptorsLocked() }
            run.flushLocked()
        }
        lock.unlock()
    }

    /// The first ``writePiece`` bytes of a longer write, shortened to end on a character boundary
    /// (unless that would leave nothing: bytes that are not UTF-8 are cut anywhere).
    private static func firstPiece(of bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let piece = UnsafeRawBufferPointer(rebasing: bytes[..<writePiece])
        let complete = UTF8Text.completePrefixLength(piece)
        return complete > 0 ? UnsafeRawBufferPointer(rebasing: piece[..<complete]) : piece
    }

    /// How many bytes of a rich result's text the run `owner`'s thread writes for keeps (its
    /// output limit), or `limit` when no run of it is in progress (a result held for the next).
    func resultLimit(owner: ContextID?, otherwise limit: Int) -> Int {
        lock.withLock { runLocked(for: owner)?.resultLimit ?? limit }
    }

    /// Appends a rich result (`display()`, the last expression's value) in order with output:
    /// to the owner's run in progress, else held for its next run.
    func resultFromPython(_ result: RichResult, owner: ContextID?) {
        if descriptorActivity.load(ordering: .relaxed) {
            lock.withLock { drainDescriptorsLocked() }
        }
        lock.withLock {
            collectStagedLocked()
            if let run = runLocked(for: owner) {
                run.acceptResultLocked(result)
            } else if !dropsInterpreterOutput || owner != nil || !isInterpreterThreadLocked, let context = owner ?? lastContext,
                liveContexts.contains(context)
            {
                if let queue = held[context] {
                    queue.append(result)
                } else {
                    let queue = ChunkQueue()
                    queue.append(result)
                    held[context] = queue
                }
            }
        }
    }

    /// Moves what the interpreter thread staged into the run in progress (it was written before
    /// whatever comes next) and disarms the stage. Before anything else is appended to the run's
    /// output, taken from it or read from it.
    func collectStagedLocked() {
        stage.takeLocked { stream, bytes in
            if let active {
                active.acceptLocked(stream, bytes, force: true)
            } else {
                holdLocked(stream, bytes)
            }
        }
    }

    /// Whether the caller is the interpreter thread (the one that ran the last run).
    private var isInterpreterThreadLocked: Bool {
        interpreterThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    /// The run that takes output of `owner` now, if it is running.
    private func runLocked(for owner: ContextID?) -> RunOutput? {
        guard let active, owner == nil || owner == active.context else { return nil }
        return active
    }

    private func isFullLocked(owner: ContextID? = nil) -> Bool {
        if let run = runLocked(for: owner) { return run.isFullLocked }
        return heldByteCountLocked(owner) >= Self.capacity
    }

    private func appendLocked(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, owner: ContextID?) -> Bool {
        if let activeReference {
            let accepted: Bool? = activeReference._withUnsafeGuaranteedRef { run in
                guard owner == nil || owner == run.context else { return nil }
                return run.acceptLocked(stream, bytes, force: false)
            }
            if let accepted { return accepted }
        }
        guard heldByteCountLocked(owner) < Self.capacity else { return false }
        holdLocked(stream, bytes, owner: owner)
        return true
    }

    /// The bytes held for where output between runs goes: the owner's held queue, or the last
    /// context's (0 when there is none, i.e. before any run or after every context that ran was
    /// deleted).
    private func heldByteCountLocked(_ owner: ContextID?) -> Int {
        (owner ?? lastContext).flatMap { held[$0]?.byteCount } ?? 0
    }

    private func holdLocked(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, owner: ContextID? = nil) {
        guard let context = owner ?? lastContext, liveContexts.contains(context) else { return }
        if let queue = held[context] {
            queue.append(stream, bytes)
        } else {
            let queue = ChunkQueue()
            queue.append(stream, bytes)
            held[context] = queue
        }
    }

    // MARK: File descriptors

    /// Points descriptors 1 and 2 at pipes read by a thread of the hub, and returns duplicates of
    /// the original descriptors (close-on-exec) for the host's own use.
    func captureStandardDescriptors() throws(KernelError) -> (stdout: Int32, stderr: Int32) {
        var saved: [Int32] = []
        var readEnds: [Int32] = []
        var writeEnds: [StandardDescriptorCopy] = []
        for target in [STDOUT_FILENO, STDERR_FILENO] {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else {
                throw KernelError(.initializationFailed, "cannot create an output pipe: \(String(cString: strerror(errno)))")
            }
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            if fcntl(ends[0], Self.setPipeSize, 1 << 20) < 0 {
                logger.debug("output pipe stays at its default size: \(String(cString: strerror(errno)))")
            }
            _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
            let original = fcntl(target, F_DUPFD_CLOEXEC, 3)
            guard original >= 0, dup2(ends[1], target) >= 0 else {
                let reason = String(cString: strerror(errno))
                for descriptor in ends + (original >= 0 ? [original] : []) { close(descriptor) }
                throw KernelError(.initializationFailed, "cannot capture descriptor \(target): \(reason)")
            }
            saved.append(original)
            EngineDescriptors.keep(ends[1])
            writeEnds.append(StandardDescriptorCopy(target: target, descriptor: ends[1]))
            readEnds.append(ends[0])
        }
        var wake: [Int32] = [0, 0]
        guard pipe(&wake) == 0 else {
            throw KernelError(.initializationFailed, "cannot create the output reader's wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for end in wake {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            EngineDescriptors.keep(end)
        }
        let input = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
        if input >= 0 { EngineDescriptors.keep(input) }
        lock.withLock {
            capturePipes = [(readEnds[0], .stdout), (readEnds[1], .stderr)]
            captureWriteEnds = writeEnds
            standardDescriptors = writeEnds + (input >= 0 ? [StandardDescriptorCopy(target: STDIN_FILENO, descriptor: input)] : [])
            readerWake = (wake[0], wake[1])
            pipeSetVersion += 1
        }
        let reader = DescriptorReader(hub: self, logger: logger)
        reader.start()
        return (saved[0], saved[1])
    }

    /// Moves whatever the pipes hold into the current destination, ignoring its capacity (the
    /// pipes themselves bound it). Never inlined: its 64 KiB read buffer would make every
    /// caller's stack frame that large (and every `print` pay for probing it).
    @inline(never)
    func drainDescriptorsLocked() {
        guard capturePipes.count == 2 else { return }
        // One poll tells which pipes hold anything (usually neither): one system call per run
        // instead of a read of each.
        var polls = (
            pollfd(fd: capturePipes[0].descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: capturePipes[1].descriptor, events: Int16(POLLIN), revents: 0))
        let ready = withUnsafeMutableBytes(of: &polls) { buffer in
            poll(buffer.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, 0)
        }
        if ready > 0 {
            if polls.0.revents != 0 { readAvailableLocked(capturePipes[0].descriptor, capturePipes[0].stream, force: true) }
            if polls.1.revents != 0 { readAvailableLocked(capturePipes[1].descriptor, capturePipes[1].stream, force: true) }
        }
        if !ownedPipes.isEmpty, let active {
            for (readEnd, owned) in ownedPipesInOrderLocked(of: active.context) {
                readAvailableLocked(readEnd, owned.stream, owner: active.context, force: true)
            }
        }
    }

    /// Reads from a pipe while it has data and the destination has room; `false` when it stopped
    /// because the destination is full.
    /// - Parameter owner: The context whose own pipe this is (`nil`: a shared pipe, whose output
    ///   goes to the run in progress, or to the context that ran last).
    @discardableResult
    @inline(never)
    func readAvailableLocked(_ descriptor: Int32, _ stream: OutputStreamName, owner: ContextID? = nil, force: Bool) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 1) { buffer in
            // Staged prints were written before whatever the pipe holds now.
            collectStagedLocked()
            while force || !isFullLocked(owner: owner) {
                let count = read(descriptor, buffer.baseAddress, buffer.count)
                guard count > 0 else { return true }
                descriptorBytesRead &+= count
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                if let active, owner == nil || owner == active.context {
                    active.acceptLocked(stream, bytes, force: true)
                } else {
                    holdLocked(stream, bytes, owner: owner)
                }
            }
            return false
        }
    }

    /// Whether `context` has the run in progress.
    func isRunningLocked(_ context: ContextID) -> Bool { active?.context == context }

    /// Leaves `context`'s pipes unread until its next run (its held output is full).
    func pauseLocked(_ context: ContextID) {
        if pausedContexts.insert(context).inserted { pipeSetChangedLocked() }
    }

    /// The pipes the reader thread polls (the wake-up pipe first, then the shared pipes, then the
    /// contexts' that are not paused) if they changed since `version`; closes the read ends of
    /// deleted contexts first.
    func pipeSetLocked(since version: inout Int) -> [(descriptor: Int32, stream: OutputStreamName, owner: ContextID?)]? {
        for descriptor in closingDescriptors {
            EngineDescriptors.forget(descriptor)
            close(descriptor)
        }
        closingDescriptors.removeAll()
        guard version != pipeSetVersion else { return nil }
        version = pipeSetVersion
        var set: [(descriptor: Int32, stream: OutputStreamName, owner: ContextID?)] = [(readerWake.read, .stdout, nil)]
        set += capturePipes.map { ($0.descriptor, $0.stream, nil) }
        for (readEnd, owned) in ownedPipesInOrderLocked() where !pausedContexts.contains(owned.context) {
            set.append((readEnd, owned.stream, owned.context))
        }
        return set
    }

    /// Closes a pipe some context's processes owned, once all of them have closed it (end of file).
    func releaseLocked(_ readEnd: Int32) {
        guard ownedPipes.removeValue(forKey: readEnd) != nil else { return }
        closingDescriptors.append(readEnd)
        pipeSetChangedLocked()
    }

    /// Wakes the reader thread to poll the changed set of pipes.
    private func pipeSetChangedLocked() {
        pipeSetVersion += 1
        var byte: UInt8 = 1
        _ = write(readerWake.write, &byte, 1)
    }
}

/// A standard descriptor and the engine's copy of what it is at the start of every run: a capture
/// pipe's write end for 1 and 2, the server's /dev/null for 0. The code of a run may close or
/// redirect that descriptor (as a python3 program may: its own later writes fail, or go where it
/// sent them); the next run, whichever context it is in, starts with it in place again.
private struct StandardDescriptorCopy: Sendable {
    let target: Int32
    let descriptor: Int32
    /// What the pipe (or file) is (device, inode).
    let identity: (device: UInt, inode: UInt)

    init(target: Int32, descriptor: Int32) {
        var status = stat()
        fstat(descriptor, &status)
        self.target = target
        self.descriptor = descriptor
        identity = (UInt(status.st_dev), UInt(status.st_ino))
    }

    /// Whether `target` is still open on the pipe (one `fstat`).
    var isInPlace: Bool {
        Self.identity(of: target).map { $0 == identity } ?? false
    }

    /// What `descriptor` is (device, inode); `nil` when it is not open.
    static func identity(of descriptor: Int32) -> (device: UInt, inode: UInt)? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return (UInt(status.st_dev), UInt(status.st_ino))
    }

    /// Makes `target` a duplicate of the write end again, unless the engine has opened a
    /// descriptor of its own under that number since the code closed it (then the next run's
    /// end tries again).
    /// - Parameter logger: Where to say so (`nil`: an expected switch, said nowhere).
    func putBack(logger: Logger?) {
        guard !EngineDescriptors.keeps(target) else { return }
        if dup2(descriptor, target) < 0 {
            logger?.error("cannot put descriptor \(target) back on the output capture: \(String(cString: strerror(errno)))")
        } else {
            logger?.notice("the code closed or redirected descriptor \(target); the next run has it on the output capture again")
        }
    }
}

/// A capture pipe made for the processes a context's code starts (one for stdout, one for stderr).
private struct OwnedPipe: Sendable {
    let context: ContextID
    let stream: OutputStreamName
    /// When the hub took it, among the pipes it reads (``OutputHub/ownedPipesInOrderLocked(of:)``):
    /// what pipes hold when read together is read in this order.
    var order: UInt64 = 0
    /// What the pipe is (device, inode).
    let identity: (device: UInt, inode: UInt)

    /// A pipe whose write end becomes `target` (1 or 2; no other copy of it is kept, so the pipe
    /// ends when the processes holding it have ended), its read end close-on-exec, non-blocking
    /// and kept by the engine; `nil` when no pipe can be made (no descriptor left: the processes
    /// keep the shared pipe).
    static func make(for target: Int32, of context: ContextID, logger: Logger) -> (readEnd: Int32, OwnedPipe)? {
        guard let (readEnd, writeEnd, owned) = open(for: target, of: context, logger: logger) else { return nil }
        let moved = dup2(writeEnd, target) >= 0
        close(writeEnd)
        guard moved else {
            EngineDescriptors.forget(readEnd)
            close(readEnd)
            return nil
        }
        return (readEnd, owned)
    }

    /// A pipe for `target` (1 or 2) of `context`'s processes: its read end close-on-exec,
    /// non-blocking and kept by the engine, its write end close-on-exec for the caller to hand
    /// to one spawn and close.
    static func open(for target: Int32, of context: ContextID, logger: Logger) -> (readEnd: Int32, writeEnd: Int32, OwnedPipe)? {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            logger.warning("no pipe for a context's processes (\(String(cString: strerror(errno)))); they write into the shared capture")
            return nil
        }
        ends = ends.map(OutputHub.aboveStandardDescriptors)
        guard !ends.contains(-1) else {
            for end in ends where end >= 0 { close(end) }
            return nil
        }
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(ends[0], OutputHub.setPipeSize, 1 << 20)  // as the shared pipes (best effort)
        EngineDescriptors.keep(ends[0])
        let identity = StandardDescriptorCopy.identity(of: ends[0]) ?? (0, 0)
        return (ends[0], ends[1], OwnedPipe(context: context, stream: target == STDERR_FILENO ? .stderr : .stdout, identity: identity))
    }
}

/// The thread that reads the capture pipes and waits (back-pressure) while the destination is full:
/// the shared pipes' (the run in progress), or a context's own whose run is in progress. A
/// context's own pipe whose held output is full is left unread until that context's next run.
private final class DescriptorReader: Sendable {
    let hub: OutputHub
    let logger: Logger

    init(hub: OutputHub, logger: Logger) {
        self.hub = hub
        self.logger = logger
    }

    /// A pass that read at least this many bytes means output is streaming in faster than the
    /// reader wakes: it then pauses for ``streamingPause`` before polling again, so the pipes
    /// (1 MiB each) fill and one wake-up reads much more. 100 MB from a subprocess: 227 → 193 ms,
    /// server CPU −25 % (Benchmarks/README.md, round 22). Only a stream is read up to 0.5 ms
    /// later; it still leaves within the run's coalescing window (20 ms), and a run's end
    /// collects the pipes itself.
    static let streamingPass = 16 << 10
    /// Microseconds (see ``streamingPass``).
    static let streamingPause: UInt32 = 500

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "pykernel-output"
        thread.start()
    }

    private func run() {
        var version = -1
        var sources: [(descriptor: Int32, stream: OutputStreamName, owner: ContextID?)] = []
        var polls: [pollfd] = []
        var drained = [UInt8](repeating: 0, count: 64)
        while true {
            if let changed = hub.lock.withLock({ hub.pipeSetLocked(since: &version) }) {
                sources = changed
                polls = sources.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
            }
            let ready = poll(&polls, nfds_t(polls.count), -1)
            if ready < 0 && errno != EINTR {
                logger.error("output capture stopped: poll on the descriptor pipes failed: \(String(cString: strerror(errno)))")
                return
            }
            if polls[0].revents != 0 { _ = read(polls[0].fd, &drained, drained.count) }
            var passBytes = 0
            for index in polls.indices.dropFirst() where polls[index].revents != 0 {
                let (descriptor, stream, owner) = sources[index]
                let ended = polls[index].revents & Int16(POLLIN) == 0 && polls[index].revents & Int16(POLLHUP) != 0
                hub.lock.withLock {
                    let before = hub.descriptorBytesRead
                    defer { passBytes &+= hub.descriptorBytesRead &- before }
                    if owner != nil, ended { return hub.releaseLocked(descriptor) }
                    while !hub.readAvailableLocked(descriptor, stream, owner: owner, force: false) {
                        if let owner, !hub.isRunningLocked(owner) {
                            hub.pauseLocked(owner)
                            return
                        }
                        hub.lock.wait(timeout: .milliseconds(50))
                    }
                }
            }
            if passBytes >= Self.streamingPass { usleep(Self.streamingPause) }
        }
    }
}

/// Short writes of the interpreter thread to the run in progress, appended without the hub's lock:
/// a printed line is one copy and one compare-and-swap instead of a lock, the run's checks and its
/// queue. One producer, the interpreter thread (holding the GIL); every other access (moving the
/// bytes into the run) holds the hub's lock.
///
/// The stage is armed by a write of the interpreter thread that took the lock and went into the run
/// (so the run's queue holds output and its reader a deadline: the staged bytes leave within the
/// coalescing window), for that write's stream. Taking the staged bytes disarms it, so the next write
/// takes the lock again (and wakes a reader waiting for any output). Everything that appends to the
/// run or reads its output takes the staged bytes first: other threads' writes, descriptor output,
/// results, requests for input, the reader, the run's end. So order and the coalescing window are
/// those of writes made under the lock.
final class InterpreterStage: @unchecked Sendable {  // bytes published through `state`; the rest guarded by the hub's lock
    /// The most bytes staged at once; a full stage sends the next write through the lock.
    static let capacity = 64 << 10
    /// In `state`: the stage takes writes (else every write takes the lock).
    private static let armed = 1 << 62

    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    /// The bytes published by the interpreter thread (the first ones of `buffer`), and ``armed``.
    private let state = Atomic<Int>(0)
    /// The stream the stage is armed for: written by the interpreter thread under the hub's lock,
    /// read by it without (it is the only writer) and by others under the lock.
    @exclusivity(unchecked) private var stream: OutputStreamName = .stdout
    /// Published bytes already moved out (hub lock held).
    @exclusivity(unchecked) private var taken = 0

    deinit { buffer.deallocate() }

    /// On the interpreter thread, holding the GIL: appends `bytes` when the stage is armed for
    /// `stream` and has room; `false` (nothing taken) otherwise.
    func append(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let current = state.load(ordering: .relaxed)
        guard current & Self.armed != 0, stream == self.stream, let source = bytes.baseAddress else { return false }
        let count = current & ~Self.armed
        guard bytes.count <= Self.capacity - count else { return false }
        // Past the published bytes: nobody reads there until the exchange below publishes them.
        (buffer + count).copyMemory(from: source, byteCount: bytes.count)
        // Fails only when a taker disarmed the stage meanwhile (then the write takes the lock).
        return state.compareExchange(expected: current, desired: current + bytes.count, ordering: .releasing).exchanged
    }

    /// Disarms the stage and calls `body` with the bytes published and not yet taken (hub lock held).
    func takeLocked(_ body: (OutputStreamName, UnsafeRawBufferPointer) -> Void) {
        guard state.load(ordering: .relaxed) & Self.armed != 0 else { return }
        let published = state.bitwiseAnd(~Self.armed, ordering: .acquiring).oldValue & ~Self.armed
        guard published > taken else { return }
        body(stream, UnsafeRawBufferPointer(start: buffer + taken, count: published - taken))
        taken = published
    }

    /// Arms the stage, empty, for `stream`: on the interpreter thread, with the hub's lock held,
    /// right after ``takeLocked(_:)`` (so every published byte has been taken).
    func armLocked(for stream: OutputStreamName) {
        self.stream = stream
        taken = 0
        state.store(Self.armed, ordering: .releasing)
    }
}
