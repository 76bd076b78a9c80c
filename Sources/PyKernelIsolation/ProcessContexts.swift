import Foundation
import JSONRPC
import Logging
import PyKernel
import PyKernelSupport
import Synchronization

/// A refused request about process contexts, with the protocol's error code and reason.
public struct IsolationError: Error, Sendable {
    /// The stable reason of the refusal (the wire's `data.reason`).
    public enum Code: String, Sendable {
        case contextNotFound = "context_not_found"
        case contextDead = "context_dead"
        case busy = "interpreter_busy"
        case shuttingDown = "shutting_down"
        case unavailable = "worker_unavailable"
        case invalidArgument = "invalid_argument"
        case invalidCwd = "invalid_cwd"
        case runQueueFull = "run_queue_full"
    }
    /// Why it was refused.
    public let code: Code
    /// What went wrong and what to do about it, for the client's user.
    public let message: String
    /// The wire name of the argument at fault (invalid arguments).
    public let field: String?

    /// A refusal with its reason, message and, for an invalid argument, the argument's name.
    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }
}

/// Contexts that live in worker processes of their own (`isolation: "process"`), and the warm
/// pool of workers they are taken from.
///
/// A worker is a `pykernel serve` on pipes; a context's runs are forwarded to it as `code.run`
/// requests. Workers are forked ahead of demand by a fork server (`pykernel fork-server`, a
/// prepared interpreter whose imports the workers share copy-on-write) and kept ready in the
/// pool; a fork server that ends is restarted. When no fork server can run, workers are spawned
/// (`pykernel serve`) instead. See docs/architecture.md, "Process contexts".
public final class ProcessContexts: Sendable {
    /// How workers are started.
    public struct Configuration: Sendable {
        /// The `pykernel` program.
        public var executable: String
        /// Arguments after `serve` given to every worker (e.g. `--venv`, `--preload`).
        public var workerArguments: [String]
        /// Workers kept started ahead of demand.
        public var poolSize: Int
        /// How long a run may go on after its timeout or an interrupt before its worker is killed.
        public var gracePeriod: Duration
        /// The server's working directory: a context created without `cwd` starts there.
        public var workingDirectory: String
        /// Fork workers from a fork server (else spawn each one).
        public var forkServer: Bool

        /// How workers of `executable` start; the defaults keep two forked workers ready.
        public init(executable: String, workerArguments: [String] = [], poolSize: Int = 2,
                    gracePeriod: Duration = .seconds(2), workingDirectory: String, forkServer: Bool = true) {
            self.executable = executable
            self.workerArguments = workerArguments
            self.poolSize = poolSize
            self.gracePeriod = gracePeriod
            self.workingDirectory = workingDirectory
            self.forkServer = forkServer
        }
    }

    /// Where a process context is in its life.
    public enum ContextState: String, Sendable {
        /// Created, its worker on the way: runs wait for it.
        case starting
        /// Its worker is bound to it.
        case alive
        /// Its worker ended or could not start (``Info/deadReason`` says why).
        case dead
    }

    /// What `context.list` shows of a process context.
    public struct Info: Sendable {
        /// The context's ID.
        public let id: String
        /// Its working directory (absolute).
        public let cwd: String
        /// `nil` while alive (or starting); else why it is dead.
        public let deadReason: String?
        /// Its worker's process ID; `nil` while none is bound to it.
        public let pid: Int32?
        /// The context's memory limit in MiB, if it has one.
        public var memoryLimitMB: Int? = nil
        /// The CPU time each run may use, if limited.
        public var cpuTimeLimit: Duration? = nil
        /// Whether its worker is still on the way (``ContextState/starting``).
        public var isStarting = false

        /// Starting, alive or dead.
        public var state: ContextState { deadReason != nil ? .dead : isStarting ? .starting : .alive }
    }

    /// Why a worker was ended on purpose (the run in progress is answered accordingly).
    private enum Ending: Sendable, Equatable {
        case timeout
        case cpuTimeLimit
        case interrupted
        case deleted
        case shutdown
    }

    private final class ActiveRun: Sendable {
        let relay: RunRelay
        /// Sent to the worker only once it is its context's first run (a queued relay: a
        /// ``KernelContexts`` run, which its reader's cancellation withdraws while it waits).
        var waitsForItsTurn: Bool { relay.isQueued }
        let timeout: Duration?
        /// The CPU time the run may use (its context's limit when it was queued).
        let cpuTimeLimit: Duration?
        /// The worker's `code.run` params, without `context`.
        let params: JSONObject
        let started = ContinuousClock.now
        /// The server's backstop of the run's timeout, while armed: cancelled when the run is
        /// answered, so that the timer does not keep the run (and its code) for the timeout's length.
        private let backstop = Mutex<(armed: (timer: DeadlineTimer, ticket: DeadlineTimer.Ticket)?, answered: Bool)>((nil, false))

        init(relay: RunRelay, timeout: Duration?, cpuTimeLimit: Duration?, params: JSONObject) {
            self.relay = relay
            self.timeout = timeout
            self.cpuTimeLimit = cpuTimeLimit
            self.params = params
        }

        /// Runs `action` at `deadline` on `timer` unless the run is answered before (in place of
        /// the action armed before, which has run: the stop, then the kill).
        func armBackstop(on timer: DeadlineTimer, at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) {
            backstop.withLock { backstop in
                guard !backstop.answered else { return }
                backstop.armed = (timer, timer.schedule(at: deadline, action))
            }
        }

        /// Answers the run (its relay's last event) and cancels its backstop.
        func finish(_ event: RelayEvent) {
            cancelBackstop()
            relay.finish(event)
        }

        /// Answers the run with a result the server writes, made from the output kept so far in
        /// the same step (``RunRelay/finish(resultFrom:)``), and cancels its backstop.
        func finish(resultFrom make: (_ stdout: HeadTailBuffer, _ stderr: HeadTailBuffer, _ results: [JSONValue]) -> RelayEvent) {
            cancelBackstop()
            relay.finish(resultFrom: make)
        }

        private func cancelBackstop() {
            let armed = backstop.withLock { backstop in
                backstop.answered = true
                return backstop.armed.take()
            }
            if let (timer, ticket) = armed { timer.cancel(ticket) }
        }
    }

    private struct Record {
        let id: String
        let cwd: String
        /// Address space the worker may grow by after its start, in MiB (`nil`: no limit).
        var memoryLimitMB: Int?
        /// CPU time (user + system, the worker's threads together) each run may use.
        var cpuTimeLimit: Duration? = nil
        var worker: Worker?
        /// The worker-side context (`default` when the context starts in the server's directory).
        var workerContext: String = "default"
        var deadReason: String?
        /// Its worker is on the way (taken from the pool, forked or spawned, then attached).
        var starting = false
        /// Runs in order: the first is in progress (or waits for the worker), the others queued.
        var runs: [ActiveRun] = []
        /// Runs not sent to the worker yet, in order: all of them while the context is starting,
        /// else those waiting for their turn (``ActiveRun/waitsForItsTurn``) and the runs behind them.
        var unsent: [ActiveRun] = []
        /// The runs that waited for the worker are being sent (later runs queue behind them).
        var sendingWaiting = false
        /// An interrupt asked for while the runs that waited for the worker were being sent, its run
        /// sent already: sent once they are, its askers then answered with the worker's answer
        /// (`false` if it never reaches the worker).
        var interruptWhenBound: [@Sendable (Bool) -> Void]?
        var ending: Ending?
        var executionCount = 0
        /// Bumped on every restart: work scheduled for an older worker is ignored.
        var generation = 0
    }

    private struct PoolWorker {
        let worker: Worker
        var ready = false
        /// Ends when the worker has run its warm-up (or failed to): a context that takes it before
        /// waits for that, so the warm-up's scratch context never runs between the context's runs.
        let warmUp = WarmUp()
    }

    /// The end of a pool worker's warm-up (``markReadyWhenAnswering(_:_:)``), which a context that
    /// takes the worker before it is ready awaits: its own runs then come after the warm-up's
    /// run and the deletion of its scratch context, as in a ready worker. Else the scratch
    /// context's run came between the context's runs in the worker, took descriptor output the
    /// context's threads wrote meanwhile, and was the last to run there (output between runs
    /// went to it, and was dropped with it).
    private final class WarmUp: Sendable {
        private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        /// Lets every waiter go, now and later.
        func finish() {
            let waiters = state.withLock { state in
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Returns once ``finish()`` was called.
        func wait() async {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state in
                    if !state.done { state.waiters.append(continuation) }
                    return state.done
                }
                if done { continuation.resume() }
            }
        }
    }

    private struct State {
        var contexts: [String: Record] = [:]
        var byWorker: [Int32: String] = [:]
        var pool: [PoolWorker] = []
        var shuttingDown = false
        /// The contexts as they were when the shutdown began (``beginShutdown()``), but those
        /// deleted since: what ``list()`` shows from then on, and the contexts still named.
        var atShutdown: [Info] = []
        var spawnFailures = 0
        var forkServer: ForkServer?
        /// Forks asked for and not received yet.
        var forking = 0
        /// Creations waiting for the next forked worker (the pool was empty).
        var waiters: [CheckedContinuation<Result<Worker, IsolationError>, Never>] = []
        /// Fork servers in a row that ended before they were ready (at 3, workers are spawned).
        var forkServerFailures = 0
        /// Workers are spawned, not forked (configured so, or the fork server could not run).
        var spawning = false
        /// Fork servers started after the first.
        var forkServerRestarts = 0
        /// When forks were asked for while none was on the way (``watchForks(of:)``).
        var forksAskedAt: ContinuousClock.Instant?
        /// ``watchForks(of:)`` is scheduled.
        var watchingForks = false
    }

    /// What `kernel.info` shows of the pool and the fork server.
    public struct PoolState: Sendable {
        /// Workers started and answering, waiting for a context.
        public let ready: Int
        /// Workers being forked or started.
        public let starting: Int
        /// The pool's target size.
        public let size: Int
        /// Workers that serve a live context.
        public let contextWorkers: Int
        /// The fork server's pid (`nil` while none runs, or when workers are spawned).
        public let forkServerPID: Int32?
        /// Whether the fork server has prepared its interpreter.
        public let forkServerReady: Bool
        /// Fork servers started after the first one ended.
        public let forkServerRestarts: Int
        /// `fork` (a fork server forks the workers) or `spawn`.
        public let workerStart: String
    }

    /// How workers are started.
    public let configuration: Configuration
    /// The most runs that may wait in one context behind its run in progress: a run submitted
    /// beyond it is refused with ``IsolationError/Code/runQueueFull`` instead of queued.
    public let runQueueLimit: Int
    private let state = Mutex(State())
    /// The workers that hold runs sent with `hold` (see ``writeHeldRuns()``).
    private let heldFor = Mutex<[Worker]>([])
    private let logger: Logger
    private let timers = DispatchQueue(label: "pykernel-isolation-timers")
    /// The runs' timeout backstops (see ``ActiveRun/armBackstop(on:at:_:)``).
    private let deadlines = DeadlineTimer()
    private let spawner = DispatchQueue(label: "pykernel-isolation-pool")

    /// - Parameters:
    ///   - runQueueLimit: The most runs that may wait in one context behind its run in progress
    ///     (the engine's ``KernelConfiguration/runQueueLimit``, which bounds a namespace context's).
    ///   - startPool: Start the pool's workers now (in the background); else at the first process
    ///     context.
    public init(
        configuration: Configuration, runQueueLimit: Int = KernelConfiguration.defaultRunQueueLimit, startPool: Bool = true,
        logger: Logger = Logger(label: "pykernel.isolation")
    ) {
        self.configuration = configuration
        self.runQueueLimit = runQueueLimit
        self.logger = logger
        state.withLock { $0.spawning = !configuration.forkServer }
        deadlines.start(name: "pykernel-isolation-deadlines")
        if startPool { refill() }
    }

    // MARK: Pool

    /// The options of a worker's `pykernel serve` (also the fork server's).
    private var serveArguments: [String] {
        ["--working-directory", configuration.workingDirectory,
         "--timeout-grace", String((configuration.gracePeriod + .seconds(5)).inSeconds)]
            + configuration.workerArguments
    }

    private func spawnWorker() throws -> Worker {
        let worker = try Worker(
            executable: configuration.executable, arguments: ["serve"] + serveArguments,
            logger: logger, onExit: { [weak self] worker in self?.workerExited(worker) })
        logger.debug("started worker \(worker.pid)")
        return worker
    }

    /// Fills the pool (on the pool's queue): asks the fork server for the workers missing, else
    /// spawns them.
    private func refill() {
        if state.withLock({ !$0.spawning }) { return refillByForking() }
        spawner.async { [self] in
            while state.withLock({ !$0.shuttingDown && $0.pool.count < configuration.poolSize }) {
                do {
                    let worker = try spawnWorker()
                    let added = state.withLock { state -> WarmUp? in
                        guard !state.shuttingDown else { return nil }
                        state.pool.append(PoolWorker(worker: worker))
                        return state.pool.last?.warmUp
                    }
                    guard let added else { return worker.kill() }
                    markReadyWhenAnswering(worker, added)
                } catch {
                    logger.error("\(error)")
                    return
                }
            }
        }
    }

    /// Marks a pool worker ready once it has run ``warmUpCode`` in a scratch context: the first
    /// run in a worker pays for its first-time work (a forked worker writes to many pages it
    /// shares with the fork server; the protocol's code paths run for the first time), and
    /// that is done before a context gets the worker, not in its first run. `warmUp` ends then
    /// (or when the worker fails), whether the worker is still in the pool or was taken.
    private func markReadyWhenAnswering(_ worker: Worker, _ warmUp: WarmUp) {
        Task {
            defer { warmUp.finish() }
            guard case .result(let created) = await Self.request(worker, "context.create", [:]),
                  let scratch = created["id"]?.stringValue,
                  case .result = await Self.request(worker, "code.run", ["code": .string(Self.warmUpCode), "context": .string(scratch)]),
                  case .result = await Self.request(worker, "context.delete", ["id": .string(scratch)]) else { return }
            state.withLock { state in
                if let index = state.pool.firstIndex(where: { $0.worker === worker }) { state.pool[index].ready = true }
                state.spawnFailures = 0
            }
        }
    }

    /// Asks the fork server (started if none runs) for the workers the pool and the waiting
    /// creations miss.
    private func refillByForking() {
        spawner.async { [self] in
            var server = state.withLock { $0.forkServer }
            if server == nil {
                guard let started = startForkServer() else { return }
                server = started
            }
            let (count, watch) = state.withLock { state -> (Int, Bool) in
                guard !state.shuttingDown, state.forkServer === server else { return (0, false) }
                let missing = max(0, configuration.poolSize + state.waiters.count - state.pool.count - state.forking)
                if state.forking == 0 && missing > 0 { state.forksAskedAt = .now }
                state.forking += missing
                let watch = missing > 0 && !state.watchingForks
                if watch { state.watchingForks = true }
                return (missing, watch)
            }
            for _ in 0..<count where !(server?.requestFork() ?? false) { break }  // ended: its end restarts it
            if watch, let server { watchForks(of: server) }
        }
    }

    /// How long a ready fork server may go without a word while forks are on the way before it
    /// is taken for stuck (stopped by SIGSTOP, hung) and killed: its end restarts it, and the
    /// creations waiting get workers of the next one. A fork and its hand-over take milliseconds.
    static let forkTimeout: Duration = .seconds(10)

    /// Checks every ``forkTimeout`` while forks are on the way: a ready fork server that sent
    /// nothing since they were asked for, for that long, is killed.
    private func watchForks(of server: ForkServer) {
        timers.asyncAfter(deadline: .now() + Self.forkTimeout.inSeconds) { [weak self] in
            guard let self else { return }
            let (stuck, again) = state.withLock { state -> (Bool, Bool) in
                guard !state.shuttingDown, state.forkServer === server, state.forking > 0, let asked = state.forksAskedAt else {
                    state.watchingForks = false
                    return (false, false)
                }
                guard server.isReady, ContinuousClock.now - max(asked, server.lastHeard) >= Self.forkTimeout else { return (false, true) }
                state.watchingForks = false
                return (true, false)
            }
            if stuck {
                logger.error("the fork server \(server.pid) handed over no worker asked for within \(Self.forkTimeout.inSeconds) s; killing it")
                server.kill()
            } else if again {
                watchForks(of: server)
            }
        }
    }

    /// Starts a fork server (on the pool's queue); on failure, workers are spawned from now on.
    private func startForkServer() -> ForkServer? {
        do {
            let server = try ForkServer(
                executable: configuration.executable, arguments: serveArguments, logger: logger,
                onExit: { [weak self] worker in self?.workerExited(worker) },
                onEvent: { [weak self] server, event in self?.forkServerEvent(server, event) })
            let kept = state.withLock { state in
                guard !state.shuttingDown, !state.spawning else { return false }
                state.forkServer = server
                state.forking = 0
                return true
            }
            guard kept else {
                server.stop()
                return nil
            }
            logger.debug("started the fork server \(server.pid)")
            return server
        } catch {
            logger.error("cannot start the fork server (\(error)); process contexts use spawned workers")
            spawnFromNowOn()
            return nil
        }
    }

    private func forkServerEvent(_ server: ForkServer, _ event: ForkServer.Event) {
        switch event {
        case .child(let worker):
            let (waiter, keep, warmUp) = state.withLock {
                state -> (CheckedContinuation<Result<Worker, IsolationError>, Never>?, Bool, WarmUp?) in
                state.forking = max(0, state.forking - 1)
                guard !state.shuttingDown else { return (nil, false, nil) }
                state.forkServerFailures = 0
                if !state.waiters.isEmpty { return (state.waiters.removeFirst(), true, nil) }
                // The pool may be full already: a deleted starting context's worker went back to it.
                guard state.pool.count < configuration.poolSize else { return (nil, false, nil) }
                state.pool.append(PoolWorker(worker: worker))
                return (nil, true, state.pool.last?.warmUp)
            }
            if !keep {
                worker.kill()
            } else if let waiter {
                waiter.resume(returning: .success(worker))
            } else if let warmUp {
                markReadyWhenAnswering(worker, warmUp)
            }
        case .lost(let reason):
            // The creation it was forked for (the first waiting) cannot have it; a pool worker is
            // forked again at the next demand, not now (the descriptors are still short).
            let waiter = state.withLock { state -> CheckedContinuation<Result<Worker, IsolationError>, Never>? in
                state.forking = max(0, state.forking - 1)
                guard !state.shuttingDown, !state.waiters.isEmpty else { return nil }
                return state.waiters.removeFirst()
            }
            logger.error("fork server \(server.pid): \(reason)")
            waiter?.resume(returning: .failure(IsolationError(.unavailable, reason)))
        case .refused(let reason):
            // Once: every fork asked for before the first refusal is refused too.
            guard state.withLock({ !$0.spawning }) else { return }
            logger.error("the fork server \(server.pid) cannot fork (\(reason)); process contexts use spawned workers")
            spawnFromNowOn()
        case .ended(let exit, let wasReady):
            let (current, failures, orphans) = state.withLock { state -> (Bool, Int, [Worker]) in
                guard state.forkServer === server, !state.shuttingDown else { return (false, 0, []) }
                state.forkServer = nil
                state.forking = 0
                state.forkServerRestarts += 1
                if !wasReady { state.forkServerFailures += 1 }
                // Its idle children are replaced: nobody could report their exit status any more.
                let orphans = state.pool.filter { $0.worker.forkServer === server }.map(\.worker)
                state.pool.removeAll { $0.worker.forkServer === server }
                return (true, state.forkServerFailures, orphans)
            }
            orphans.forEach { $0.kill() }
            guard current else { return }
            if failures >= 3 {
                logger.error("the fork server \(server.pid) \(exit) before it was ready, three times in a row; process contexts use spawned workers")
                spawnFromNowOn()
            } else {
                logger.error("the fork server \(server.pid) \(exit); restarting it (the workers it forked keep running)")
                refill()
            }
        }
    }

    /// Gives up the fork server: workers are spawned from now on, also for waiting creations.
    private func spawnFromNowOn() {
        let (server, waiters) = state.withLock { state in
            state.spawning = true
            defer { state.forkServer = nil; state.forking = 0; state.waiters = [] }
            return (state.forkServer, state.waiters)
        }
        server?.stop()
        for waiter in waiters { spawnForWaiter(waiter) }
        refill()
    }

    /// Spawns a worker for a waiting creation (not on the pool's serial queue: the creations of a
    /// burst start their workers side by side; `posix_spawn` never runs on the cooperative pool).
    private func spawnForWaiter(_ waiter: CheckedContinuation<Result<Worker, IsolationError>, Never>) {
        DispatchQueue.global().async { [self] in
            do {
                waiter.resume(returning: .success(try spawnWorker()))
            } catch {
                waiter.resume(returning: .failure(IsolationError(.unavailable, "\(error)")))
            }
        }
    }

    /// A worker from the pool (a ready one first; with `readyOnly`, only a ready one), with its
    /// warm-up when it is not ready yet (await it before sending the worker anything), and the
    /// pool's refill.
    private func takePoolWorker(readyOnly: Bool) -> (worker: Worker, warmUp: WarmUp?)? {
        let (taken, left) = state.withLock { state -> ((worker: Worker, warmUp: WarmUp?)?, Int) in
            state.spawnFailures = 0
            let index = state.pool.firstIndex(where: { $0.ready && $0.worker.exit == nil })
                ?? (readyOnly ? nil : state.pool.firstIndex(where: { $0.worker.exit == nil }))
            let taken = index.map { state.pool.remove(at: $0) }
            return (taken.map { ($0.worker, $0.ready ? nil : $0.warmUp) }, state.pool.count)
        }
        guard let taken else { return nil }
        // While the pool still has a worker, the new one starts a moment later: its start
        // (fork, threads, warm-up) would take a core from the context's first run.
        if left > 0 {
            spawner.asyncAfter(deadline: .now() + Self.refillDelay) { [weak self] in self?.refill() }
        } else {
            refill()
        }
        return taken
    }

    /// A ready worker from the pool, if it has one.
    private func takeReadyWorker() -> Worker? { takePoolWorker(readyOnly: true)?.worker }

    /// A worker for a new context: a ready one from the pool, else one still starting (once its
    /// warm-up has run), else the next one forked (or spawned).
    private func takeWorker() async throws(IsolationError) -> Worker {
        if let taken = takePoolWorker(readyOnly: false) {
            await taken.warmUp?.wait()
            return taken.worker
        }
        let next: Result<Worker, IsolationError> = await withCheckedContinuation { continuation in
            let queued = state.withLock { state in
                guard !state.spawning, !state.shuttingDown else { return false }
                state.waiters.append(continuation)
                return true
            }
            if !queued { spawnForWaiter(continuation) }
            refill()
        }
        return try next.get()
    }

    /// The pool's and the fork server's state for `kernel.info`.
    public func poolState() -> PoolState {
        state.withLock { state in
            let ready = state.pool.filter(\.ready).count
            return PoolState(
                ready: ready, starting: state.pool.count - ready + state.forking, size: configuration.poolSize,
                contextWorkers: state.contexts.values.filter { ($0.worker.map { $0.exit == nil } ?? false) && $0.deadReason == nil }.count,
                forkServerPID: state.forkServer?.pid, forkServerReady: state.forkServer?.isReady ?? false,
                forkServerRestarts: state.forkServerRestarts, workerStart: state.spawning ? "spawn" : "fork")
        }
    }

    // MARK: Contexts

    /// Whether `id` names a process context (after the shutdown began, one of those it found).
    public func contains(_ id: String) -> Bool {
        state.withLock { state in
            state.shuttingDown ? state.atShutdown.contains { $0.id == id } : state.contexts[id] != nil
        }
    }

    /// The largest `memory_limit_mb` (1 PiB): its byte count must fit the worker's limit.
    public static let maxMemoryLimitMB = 1 << 30

    /// Creates a process context (`id` chosen by the caller, unique among every context).
    ///
    /// With a ready worker in the pool the context is bound to it at once (after its memory limit
    /// and directory are set in it) and returned alive. With none, the context is returned at once
    /// in state ``ContextState/starting``: its worker is on the way (the next forked one), and the runs
    /// and interrupts sent meanwhile wait for it; a worker that cannot start makes the context
    /// dead with the reason. See docs/architecture.md, "Creation before the worker".
    /// - Parameters:
    ///   - cwd: An absolute, validated directory; `nil` for the server's.
    ///   - memoryLimitMB: Address space the worker may add to its size at creation (`RLIMIT_AS`).
    ///   - cpuTimeLimit: CPU time each run may use; a run past it is ended with its worker.
    ///   - waitForWorker: Wait until the context has its worker (and throw when none can start),
    ///     never answering ``ContextState/starting`` (a server's `default` context at start).
    public func create(
        id: String, cwd: String?, memoryLimitMB: Int? = nil, cpuTimeLimit: Duration? = nil, waitForWorker: Bool = false
    ) async throws(IsolationError) -> Info {
        let cwd = cwd ?? configuration.workingDirectory
        if let memoryLimitMB, !(1...Self.maxMemoryLimitMB).contains(memoryLimitMB) {
            throw IsolationError(.invalidArgument, "memory_limit_mb must be an integer from 1 to \(Self.maxMemoryLimitMB) (MiB).", field: "memory_limit_mb")
        }
        if state.withLock({ $0.shuttingDown }) { throw Self.startsNoWorker }
        let worker: Worker
        if !waitForWorker {
            guard let ready = takeReadyWorker() else {
                return createStarting(id: id, cwd: cwd, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit)
            }
            worker = ready
        } else {
            worker = try await takeWorker()
        }
        let workerContext = try await attach(worker, cwd: cwd, memoryLimitMB: memoryLimitMB)
        return try register(id: id, cwd: cwd, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit,
                            worker: worker, workerContext: workerContext)
    }

    /// Creates a process context without waiting, when that is possible: a ready worker in the
    /// pool, the server's directory and no memory limit (nothing to prepare in the worker). Else
    /// `nil`, and nothing changed: use ``create(id:cwd:memoryLimitMB:cpuTimeLimit:waitForWorker:)``.
    ///
    /// The server answers such a creation on its request reader thread, in the same write as
    /// the requests read with it, instead of from a task (two thread wake-ups fewer).
    public func createAtOnce(id: String, cwd: String?, cpuTimeLimit: Duration? = nil) throws(IsolationError) -> Info? {
        let cwd = cwd ?? configuration.workingDirectory
        guard cwd == configuration.workingDirectory else { return nil }
        if state.withLock({ $0.shuttingDown }) { throw Self.startsNoWorker }
        guard let worker = takeReadyWorker() else { return nil }
        return try register(id: id, cwd: cwd, memoryLimitMB: nil, cpuTimeLimit: cpuTimeLimit, worker: worker, workerContext: "default")
    }

    /// Registers a new context bound to its prepared worker (killed when the server shuts down meanwhile).
    private func register(
        id: String, cwd: String, memoryLimitMB: Int?, cpuTimeLimit: Duration?, worker: Worker, workerContext: String
    ) throws(IsolationError) -> Info {
        let accepted = state.withLock { state in
            guard !state.shuttingDown else { return false }
            state.contexts[id] = Record(id: id, cwd: cwd, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit,
                                        worker: worker, workerContext: workerContext)
            state.byWorker[worker.pid] = id
            return true
        }
        guard accepted else {
            worker.kill()
            throw Self.startsNoWorker
        }
        if worker.exit != nil { workerExited(worker) }  // ended before it was registered
        return Info(id: id, cwd: cwd, deadReason: nil, pid: worker.pid, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit)
    }

    /// Registers a context whose worker is on the way and binds the worker when it comes.
    private func createStarting(id: String, cwd: String, memoryLimitMB: Int?, cpuTimeLimit: Duration?) -> Info {
        state.withLock { state in
            var record = Record(id: id, cwd: cwd, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit)
            record.starting = true
            state.contexts[id] = record
        }
        bindWhenStarted(id, generation: 0, cwd: cwd, memoryLimitMB: memoryLimitMB)
        return Info(id: id, cwd: cwd, deadReason: nil, pid: nil, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit,
                    isStarting: true)
    }

    /// Takes a worker for the starting context `id` (the pool's next, else the next forked one),
    /// sets its memory limit and directory, and binds it; a worker that cannot start makes the
    /// context dead. A worker that comes when the context was deleted or restarted meanwhile is
    /// given back to the pool (when it is still fresh and the pool has room) or killed.
    private func bindWhenStarted(_ id: String, generation: Int, cwd: String, memoryLimitMB: Int?) {
        Task {
            let worker: Worker
            let workerContext: String
            do throws(IsolationError) {
                worker = try await takeWorker()
                guard isWaitingForWorker(id, generation: generation) else { return giveBack(worker, fresh: true) }
                workerContext = try await attach(worker, cwd: cwd, memoryLimitMB: memoryLimitMB)
            } catch {
                return failStart(id, generation: generation, reason: "its worker process could not be started: \(error.message)")
            }
            bind(id, generation: generation, worker: worker, workerContext: workerContext)
        }
    }

    /// Whether `id` (of this generation) still waits for its worker.
    private func isWaitingForWorker(_ id: String, generation: Int) -> Bool {
        state.withLock { state in
            guard let record = state.contexts[id] else { return false }
            return !state.shuttingDown && record.generation == generation && record.starting
        }
    }

    /// Puts a worker nobody needs any more back into the pool (a fresh one, when there is room),
    /// else kills it.
    private func giveBack(_ worker: Worker, fresh: Bool) {
        let kept = state.withLock { state -> WarmUp? in
            // Room counts the workers on the way to the pool too (forks asked for already).
            guard fresh, !state.shuttingDown, worker.exit == nil, state.pool.count + state.forking < configuration.poolSize else {
                return nil
            }
            state.pool.append(PoolWorker(worker: worker))
            return state.pool.last?.warmUp
        }
        if let kept { markReadyWhenAnswering(worker, kept) } else { worker.kill() }
    }

    /// Binds a starting context to its worker: the runs that waited are sent in order, then an
    /// interrupt asked for meanwhile. `false` (the worker given back) when the context was deleted,
    /// restarted or failed meanwhile.
    @discardableResult
    private func bind(_ id: String, generation: Int, worker: Worker, workerContext: String) -> Bool {
        let bound = state.withLock { state in
            guard !state.shuttingDown, var record = state.contexts[id], record.generation == generation, record.starting else {
                return false
            }
            record.worker = worker
            record.workerContext = workerContext
            record.starting = false
            record.sendingWaiting = true
            state.contexts[id] = record
            state.byWorker[worker.pid] = id
            return true
        }
        guard bound else {
            giveBack(worker, fresh: false)
            return false
        }
        sendWaitingRuns(id, generation: generation)
        if worker.exit != nil { workerExited(worker) }  // ended before it was bound
        return true
    }

    /// Sends the context's unsent runs to its worker, one at a time in order (a run submitted
    /// meanwhile queues behind them) up to one that waits for its turn while an earlier run is
    /// in progress, then the interrupt that waited for the worker.
    private func sendWaitingRuns(_ id: String, generation: Int) {
        while true {
            let next = state.withLock { state -> (ActiveRun, Worker, String, Bool)?? in
                guard var record = state.contexts[id], record.generation == generation, record.deadReason == nil,
                      let worker = record.worker else { return .none }
                defer { state.contexts[id] = record }
                guard let first = record.unsent.first, !first.waitsForItsTurn || record.runs.first === first else {
                    record.sendingWaiting = false
                    return .some(nil)
                }
                let run = record.unsent.removeFirst()
                return (run, worker, record.workerContext, record.runs.first === run)
            }
            guard case .some(let item) = next else { return }
            guard let (run, worker, workerContext, isHead) = item else { break }
            send(id, run, to: worker, workerContext: workerContext, isHead: isHead, generation: generation)
        }
        let askers = state.withLock { state -> [@Sendable (Bool) -> Void]? in
            guard var record = state.contexts[id], record.generation == generation, let askers = record.interruptWhenBound else { return nil }
            record.interruptWhenBound = nil
            state.contexts[id] = record
            return askers
        }
        if let askers {
            do throws(IsolationError) {
                try interrupt(id) { interrupted in askers.forEach { $0(interrupted) } }
            } catch {
                Self.answerNotInterrupted(askers)
            }
        }
    }

    /// A starting context whose worker could not start: dead, its waiting runs answered `-32006`.
    private func failStart(_ id: String, generation: Int, reason: String) {
        let found = state.withLock { state -> ([ActiveRun], [@Sendable (Bool) -> Void]?)? in
            guard var record = state.contexts[id], record.generation == generation, record.starting else { return nil }
            record.starting = false
            record.deadReason = reason
            defer { record.runs = []; record.unsent = []; record.interruptWhenBound = nil; state.contexts[id] = record }
            return (record.runs, record.interruptWhenBound)
        }
        guard let (runs, askers) = found else { return }  // deleted or restarted meanwhile
        Self.answerNotInterrupted(askers)
        logger.error("context \(id): \(reason)")
        Self.failUnstarted(runs, code: Self.contextDeadCode, reason: IsolationError.Code.contextDead.rawValue,
                           message: "The context \(id) is dead (\(reason)); the run never started.")
    }

    /// Prepares a worker for a context: its memory limit, and the worker-side context for `cwd`
    /// (`default` in the server's directory, else a new one).
    private func attach(_ worker: Worker, cwd: String, memoryLimitMB: Int?) async throws(IsolationError) -> String {
        if let memoryLimitMB {
            try await limitMemory(of: worker, megabytes: memoryLimitMB)
        }
        guard cwd != configuration.workingDirectory else { return "default" }
        guard case .result(let result) = await Self.request(worker, "context.create", ["cwd": .string(cwd)]),
              let id = result["id"]?.stringValue else {
            worker.kill()
            throw IsolationError(.unavailable, "The worker process could not create the context in \(cwd).")
        }
        return id
    }

    /// Sets the worker's `RLIMIT_AS` (soft and hard) to its present size plus `megabytes`, from
    /// a scratch context of the worker (created and deleted again).
    private func limitMemory(of worker: Worker, megabytes: Int) async throws(IsolationError) {
        let code = """
            import resource
            with open('/proc/self/status') as status:
                size = next(int(line.split()[1]) for line in status if line.startswith('VmSize:')) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size + \(megabytes) * 1048576,) * 2)
            """
        guard case .result(let created) = await Self.request(worker, "context.create", [:]),
              let scratch = created["id"]?.stringValue,
              case .result(let ran) = await Self.request(worker, "code.run", ["code": .string(code), "context": .string(scratch)]),
              ran["status"]?.stringValue == "ok",
              case .result = await Self.request(worker, "context.delete", ["id": .string(scratch)]) else {
            worker.kill()
            throw IsolationError(.unavailable, "The worker process could not set its memory limit.")
        }
    }

    /// Sends a request to a worker and waits for its answer.
    private static func request(_ worker: Worker, _ method: String, _ params: JSONObject) async -> WorkerReply {
        await withCheckedContinuation { continuation in
            let sent = worker.send(method, params, Worker.Pending(
                notification: { _, _ in }, reply: { continuation.resume(returning: $0) }))
            if sent == nil { continuation.resume(returning: .ended) }
        }
    }

    /// Every process context; once the shutdown began, every one as it was then (but those
    /// deleted since), whatever the shutdown has ended since.
    public func list() -> [Info] {
        state.withLock { state in state.shuttingDown ? state.atShutdown : Self.list(state) }
    }

    private static func list(_ state: State) -> [Info] {
        state.contexts.values.sorted { $0.id < $1.id }.map {
            Info(id: $0.id, cwd: $0.cwd, deadReason: $0.deadReason, pid: $0.worker?.pid, memoryLimitMB: $0.memoryLimitMB,
                 cpuTimeLimit: $0.cpuTimeLimit, isStarting: $0.starting)
        }
    }

    /// Deletes a process context: its worker's process group is killed at once; a run in
    /// progress is answered `interrupted`, queued runs `context_deleted`.
    ///
    /// After the shutdown began, deleting a context it found succeeds whether or not the shutdown
    /// has ended its worker yet (it is no longer listed).
    public func delete(_ id: String) throws(IsolationError) {
        let (record, listedAtShutdown) = state.withLock { state -> (Record?, Bool) in
            let listed = state.shuttingDown && state.atShutdown.contains { $0.id == id }
            if listed { state.atShutdown.removeAll { $0.id == id } }
            guard let record = state.contexts.removeValue(forKey: id) else { return (nil, listed) }
            if let worker = record.worker { state.byWorker[worker.pid] = nil }
            return (record, listed)
        }
        guard let record else {
            if listedAtShutdown { return }
            throw Self.notFound(id)
        }
        Self.answerNotInterrupted(record.interruptWhenBound)
        if record.starting {
            // Nothing ran yet; the worker on the way goes back to the pool or is killed when it comes.
            Self.failUnstarted(record.runs, code: -32004, reason: "context_deleted", message: ErrorMessages.contextDeleted(id))
        } else {
            answer(record.runs, of: id, ending: .deleted, exit: nil, executionCount: record.executionCount)
        }
        record.worker?.kill()
    }

    /// Gives the context a fresh worker (same id and directory, execution count 0):
    /// ``beginRestart(_:)`` then ``finishRestart(_:)``.
    public func restart(_ id: String) async throws(IsolationError) -> Info {
        try await finishRestart(beginRestart(id))
    }

    /// A restart begun by ``beginRestart(_:)``, for ``finishRestart(_:)``.
    public struct PendingRestart: Sendable {
        let id: String
        let generation: Int
        let cwd: String
        let memoryLimitMB: Int?
        let cpuTimeLimit: Duration?
    }

    /// What a restart does at once, in the order requests are read: the old worker is killed and
    /// the context waits for a fresh one, as a starting context does (runs submitted from now
    /// on wait for that worker; an interrupt of them waits too). Throws when the context has a
    /// run in progress (`busy`), is unknown, or its directory is gone (`invalidCwd`).
    public func beginRestart(_ id: String) throws(IsolationError) -> PendingRestart {
        let (old, pending) = try state.withLock { state throws(IsolationError) -> (Worker?, PendingRestart) in
            if state.shuttingDown {
                throw state.atShutdown.contains(where: { $0.id == id }) ? Self.startsNoWorker : Self.notFound(id)
            }
            guard var record = state.contexts[id] else { throw Self.notFound(id) }
            if record.deadReason == nil && !record.runs.isEmpty {
                throw IsolationError(.busy, "The context has a run in progress; interrupt it or wait before restarting it.")
            }
            guard Self.isDirectory(record.cwd) else {
                // A fresh worker could not start there (it was refused as `worker_unavailable`).
                throw IsolationError(
                    .invalidCwd,
                    "The working directory of context \(id), \(record.cwd), no longer exists; make the directory again to restart "
                        + "the context there, " + ErrorMessages.otherWayOutOfAMissingDirectory(id),
                    field: "id")
            }
            let old = record.worker
            if let old { state.byWorker[old.pid] = nil }
            record.worker = nil
            record.workerContext = "default"
            record.deadReason = nil
            record.ending = nil
            record.executionCount = 0
            record.generation += 1
            record.starting = true
            record.sendingWaiting = false
            Self.answerNotInterrupted(record.interruptWhenBound)
            record.interruptWhenBound = nil
            let stale = record.runs
            record.runs = []
            record.unsent = []
            state.contexts[id] = record
            if !stale.isEmpty { Self.failQueued(stale, id: id) }
            return (old, PendingRestart(id: id, generation: record.generation, cwd: record.cwd, memoryLimitMB: record.memoryLimitMB,
                                        cpuTimeLimit: record.cpuTimeLimit))
        }
        old?.kill()
        return pending
    }

    /// The rest of a restart: takes a worker, prepares it and binds it; the runs that waited are
    /// then sent. A worker that cannot start leaves the context dead (its runs are answered
    /// `-32006`); a context deleted meanwhile is `contextNotFound`.
    public func finishRestart(_ restart: PendingRestart) async throws(IsolationError) -> Info {
        let (id, generation) = (restart.id, restart.generation)
        let worker: Worker
        let workerContext: String
        do throws(IsolationError) {
            worker = try await takeWorker()
            guard isWaitingForWorker(id, generation: generation) else {
                giveBack(worker, fresh: true)
                throw IsolationError(.contextNotFound, "The context \(id) was deleted while it restarted.")
            }
            workerContext = try await attach(worker, cwd: restart.cwd, memoryLimitMB: restart.memoryLimitMB)
        } catch {
            if error.code != .contextNotFound {
                failStart(id, generation: generation, reason: "its worker process could not be started: \(error.message)")
            }
            throw error
        }
        guard bind(id, generation: generation, worker: worker, workerContext: workerContext) else {
            throw IsolationError(.contextNotFound, "The context \(id) was deleted while it restarted.")
        }
        return Info(id: id, cwd: restart.cwd, deadReason: nil, pid: worker.pid, memoryLimitMB: restart.memoryLimitMB,
                    cpuTimeLimit: restart.cpuTimeLimit)
    }

    // MARK: Runs

    /// Forwards a run to the context's worker; the relay carries its notifications and answer.
    /// With `allowStdin`, the worker's `code.input_request` notifications come through the relay
    /// and ``RunRelay/answerInput(_:)`` answers them.
    ///
    /// A run read through ``RunRelay/next()`` (no `deliver`) is sent to the worker once the
    /// context's earlier runs are answered: until then ``RunRelay/readerCancelled()`` withdraws it
    /// (answered `interrupted`, execution count 0, never run), and ``RunRelay/abandon()`` lets
    /// the worker go on without a reader. A run with `deliver` is sent at once (pipelined).
    /// - Parameters:
    ///   - deliver: Takes the run's events on the thread that produces each, instead of
    ///     ``RunRelay/next()`` (see ``RunRelay/init(outputLimit:limit:consumer:withdraw:)``): no task between
    ///     the worker's answer and the client's.
    ///   - hold: Keep the request to the worker until ``writeHeldRuns()`` (or the next request to
    ///     that worker), so that the runs a server reads together reach each worker in one write.
    @discardableResult
    public func run(
        _ id: String, code: String, environment: [String: String], timeout: Duration?, outputLimit: Int,
        allowStdin: Bool = false, deliver: RelayConsumer? = nil, hold: Bool = false
    ) throws(IsolationError) -> RunRelay {
        var params: JSONObject = ["code": .string(code), "timeout": .double(timeout?.inSeconds ?? 0),
                                  "max_output_bytes": .integer(Int64(outputLimit))]
        if !environment.isEmpty {
            params["env"] = .object(JSONObject(environment.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
        }
        if allowStdin { params["allow_stdin"] = true }
        // A queued relay's run waits for its turn before it is sent: its reader's cancellation
        // withdraws it meanwhile (it never runs), as a namespace run still queued.
        let withdrawal: (@Sendable (RunRelay) -> Void)? = if deliver == nil {
            { [weak self] relay in self?.withdraw(relay, of: id) }
        } else {
            nil
        }
        let relay = RunRelay(outputLimit: outputLimit, consumer: deliver, withdraw: withdrawal)
        let (run, target) = try state.withLock { state throws(IsolationError) -> (ActiveRun, (Worker, String, Bool, Int)?) in
            if state.shuttingDown { throw IsolationError(.shuttingDown, ErrorMessages.runNotStarted) }
            guard state.contexts[id] != nil else { throw Self.notFound(id) }
            let run = ActiveRun(relay: relay, timeout: timeout, cpuTimeLimit: state.contexts[id]!.cpuTimeLimit, params: params)
            return (run, try Self.queue(run, in: &state.contexts[id]!, id: id, limit: runQueueLimit))
        }
        if let (worker, workerContext, isHead, generation) = target {
            send(id, run, to: worker, workerContext: workerContext, isHead: isHead, generation: generation, hold: hold)
        }
        return relay
    }

    /// Queues `run` in its context's record (changed in place: a copy of the record would copy
    /// its queue of runs for every run queued, quadratic in a pipelined batch); returns where to
    /// send it (worker, worker-side context, whether it is the context's first run, generation),
    /// or `nil` when it waits for the worker. Refused when `limit` runs wait behind the one in progress.
    private static func queue(
        _ run: ActiveRun, in record: inout Record, id: String, limit: Int
    ) throws(IsolationError) -> (Worker, String, Bool, Int)? {
        if let reason = record.deadReason { throw Self.dead(id, reason) }
        guard record.runs.count <= limit else {
            throw IsolationError(
                .runQueueFull,
                "\(limit) runs are already waiting in the context \(id); the run was not queued. Retry when some have finished.")
        }
        record.runs.append(run)
        // Its worker is on the way, the runs that waited for it are being sent, runs wait for
        // their turn, or it waits for its own: after them.
        guard let worker = record.worker, !record.sendingWaiting, record.unsent.isEmpty,
              !run.waitsForItsTurn || record.runs.count == 1 else {
            record.unsent.append(run)
            return nil
        }
        return (worker, record.workerContext, record.runs.count == 1, record.generation)
    }

    /// What follows a run's answer in its context (``dequeue(_:of:generation:executionCount:)``).
    private enum Next {
        /// Nothing to do (no next run, or it is sent, and its deadline armed, by whoever sends it).
        case none
        /// The next run, sent already, is in progress now: arm its deadline.
        case armDeadline(ActiveRun)
        /// The next run waited for its turn: send the waiting runs (``sendWaitingRuns(_:generation:)``).
        case sendWaiting
    }

    /// Takes an answered run out of its context's queue (in place, as ``queue(_:in:id:limit:)``) and says
    /// what follows for the context's next run when the answered one was the first. Nothing when
    /// the context was deleted or restarted since. The worker's answers are not ordered (a run's
    /// answer may wait for the task that relays its results while the next run's is written at
    /// once): a run answered before an earlier one leaves the queue where it is, and the earlier
    /// run stays first until its own answer.
    private func dequeue(_ run: ActiveRun, of id: String, generation: Int, executionCount: Int?) -> Next {
        state.withLock { state -> Next in
            // One lookup (the lock is taken by every worker's reader thread once per run).
            guard let index = state.contexts.index(forKey: id), state.contexts.values[index].generation == generation else { return .none }
            if state.contexts.values[index].runs.first === run {
                return Self.dequeue(in: &state.contexts.values[index], executionCount: executionCount)
            }
            guard let position = state.contexts.values[index].runs.firstIndex(where: { $0 === run }) else { return .none }
            state.contexts.values[index].runs.remove(at: position)
            Self.count(executionCount, in: &state.contexts.values[index])
            return .none
        }
    }

    private static func dequeue(in record: inout Record, executionCount: Int?) -> Next {
        record.runs.removeFirst()
        count(executionCount, in: &record)
        guard let next = record.runs.first else { return .none }
        // Sent already: in progress from now on. Not sent yet: whoever sends it finds it first and
        // arms its deadline then.
        guard record.unsent.contains(where: { $0 === next }) else { return .armDeadline(next) }
        // A run that waited for its turn (the worker is there, and nothing else is sending): its
        // turn has come. Interrupts wait until it is sent, as for a starting context.
        guard record.worker != nil, !record.sendingWaiting else { return .none }
        record.sendingWaiting = true
        return .sendWaiting
    }

    /// After a run's answer: what ``dequeue(_:of:generation:executionCount:)`` said follows. The
    /// waiting runs are sent off the worker's reader thread (which must never wait for room in
    /// that worker's input).
    private func proceed(_ next: Next, in id: String, generation: Int) {
        switch next {
        case .none: break
        case .armDeadline(let run): armDeadline(id, run, generation: generation)
        case .sendWaiting: DispatchQueue.global().async { [weak self] in self?.sendWaitingRuns(id, generation: generation) }
        }
    }

    /// Withdraws a run that waits for its turn (not sent to the worker yet): it is answered
    /// `interrupted` with execution count 0 and never runs, as a namespace run withdrawn while
    /// queued. Nothing for a run sent already, answered, or of a context deleted or restarted.
    private func withdraw(_ relay: RunRelay, of id: String) {
        let withdrawn = state.withLock { state -> ActiveRun? in
            guard let index = state.contexts.index(forKey: id),
                  let position = state.contexts.values[index].unsent.firstIndex(where: { $0.relay === relay }) else { return nil }
            let run = state.contexts.values[index].unsent.remove(at: position)
            state.contexts.values[index].runs.removeAll { $0 === run }
            return run
        }
        if let withdrawn { Self.answerWithdrawn(withdrawn) }
    }

    /// Answers a run withdrawn before it was sent to the worker: `interrupted`, execution count 0.
    private static func answerWithdrawn(_ run: ActiveRun) {
        run.finish(.result([
            "status": "interrupted", "stdout": "", "stderr": "", "stdout_truncated": false, "stderr_truncated": false,
            "stdout_omitted_bytes": 0, "stderr_omitted_bytes": 0,
            "error": ["name": "KeyboardInterrupt", "value": "", "traceback": .string(ErrorMessages.runCancelledBeforeStart)],
            "execution_count": 0, "duration": 0.0, "results": [],
        ]))
    }

    /// The context's execution count once a run answered with `executionCount` (answers may come
    /// out of order: the highest).
    private static func count(_ executionCount: Int?, in record: inout Record) {
        if let executionCount { record.executionCount = max(record.executionCount, executionCount) }
    }

    /// Sends a run to the context's worker (arming its deadline when it is the context's first run).
    private func send(_ id: String, _ run: ActiveRun, to worker: Worker, workerContext: String, isHead: Bool, generation: Int,
                      hold: Bool = false) {
        var params = run.params
        params["context"] = .string(workerContext)
        if isHead { armDeadline(id, run, generation: generation) }
        let relay = run.relay
        if hold { heldFor.withLock { if !$0.contains(where: { $0 === worker }) { $0.append(worker) } } }
        let requestID = worker.send("code.run", params, Worker.Pending(
            notification: { method, params in relay.push(method, params) },
            reply: { [weak self] reply in self?.runAnswered(id, run, reply, generation: generation, workerContext: workerContext) },
            caughtUp: { relay.caughtUp() }), hold: hold)
        relay.bind(to: worker, requestID: requestID)
    }

    /// Writes the runs held by ``run(_:code:environment:timeout:outputLimit:allowStdin:deliver:hold:)``
    /// to their workers, one write each.
    public func writeHeldRuns() {
        let workers = heldFor.withLock { held in
            defer { held.removeAll(keepingCapacity: true) }
            return held
        }
        for worker in workers { worker.writeHeld() }
    }

    /// Sends an interrupt to the context's run in progress; a run still going after the grace
    /// period is ended with its worker. `answered` gets whether it stopped a run: the worker's own
    /// answer, `true` only when it took the interrupt while the run was in progress (whose answer
    /// then has status `interrupted`), `false` when the run had ended first or nothing runs. A run
    /// not sent yet (its context's worker is on the way) is withdrawn at once: answered
    /// `interrupted` without running, and `answered` gets `true`.
    public func interrupt(_ id: String, answered: @escaping @Sendable (Bool) -> Void) throws(IsolationError) {
        _ = try sendInterrupt(id, answered: answered)
    }

    /// ``interrupt(_:answered:)`` only when the run of `relay` is the context's run in progress, never
    /// another (a front cancelling that run's request): `false` when it has been answered, or
    /// has not begun. A run read through ``RunRelay/next()`` is the only one its worker has while
    /// it is in progress (the next is sent after its answer), so the interrupt never reaches a
    /// later run.
    public func interrupt(_ id: String, only relay: RunRelay) throws(IsolationError) -> Bool {
        try sendInterrupt(id, only: relay, answered: nil)
    }

    /// What an interrupt does (``sendInterrupt(_:only:answered:)``).
    private enum Interruption {
        /// Nothing runs (or not the run asked about).
        case nothing
        /// The run in progress was not sent yet (its worker is on the way): it is withdrawn.
        case withdrawn(ActiveRun)
        /// The run is sent and the runs that waited behind it are being sent: sent after them.
        case afterWaitingRuns
        /// Sent to the worker (its worker-side context), for the run in progress (of the generation).
        case send(Worker, String, ActiveRun, Int)
    }

    /// Answers `false` to whoever asked for an interrupt that will not be sent (its context's runs
    /// ended otherwise: deleted, dead, restarted, shut down). Called outside the lock or within
    /// it: an asker only records the answer.
    private static func answerNotInterrupted(_ askers: [@Sendable (Bool) -> Void]?) {
        askers?.forEach { $0(false) }
    }

    private func sendInterrupt(
        _ id: String, only relay: RunRelay? = nil, answered: (@Sendable (Bool) -> Void)?
    ) throws(IsolationError) -> Bool {
        let target = try state.withLock { state throws(IsolationError) -> Interruption in
            // After the shutdown began: its runs are the shutdown's to stop.
            if state.shuttingDown {
                guard state.atShutdown.contains(where: { $0.id == id }) else { throw Self.notFound(id) }
                return .nothing
            }
            guard var record = state.contexts[id] else { throw Self.notFound(id) }
            guard record.deadReason == nil, let run = record.runs.first, relay.map({ $0 === run.relay }) ?? true else { return .nothing }
            if let position = record.unsent.firstIndex(where: { $0 === run }) {
                // The run waits for the worker (or for its turn): withdrawn now, it never runs.
                record.unsent.remove(at: position)
                record.runs.removeFirst()
                state.contexts[id] = record
                return .withdrawn(run)
            }
            guard let worker = record.worker, !record.sendingWaiting else {
                // The run is sent, the runs that waited behind it are being sent: the interrupt
                // goes right after them.
                record.interruptWhenBound = (record.interruptWhenBound ?? []) + (answered.map { [$0] } ?? [{ _ in }])
                state.contexts[id] = record
                return .afterWaitingRuns
            }
            return .send(worker, record.workerContext, run, record.generation)
        }
        let (worker, workerContext, run, generation): (Worker, String, ActiveRun, Int)
        switch target {
        case .nothing:
            answered?(false)
            return false
        case .withdrawn(let run):
            Self.answerWithdrawn(run)
            answered?(true)
            return true
        case .afterWaitingRuns:
            return true  // answered once sent
        case .send(let to, let context, let head, let of):
            (worker, workerContext, run, generation) = (to, context, head, of)
        }
        // The worker's answer to the interrupt, and its run's, may pass the bound of unread output.
        run.relay.requestStop()
        // The worker's answer, or (first) the grace period without one.
        let settled = FirstOfTwo()
        let reply: @Sendable (WorkerReply) -> Void = { [weak self] reply in
            guard settled.claim() else { return }
            let interrupted = if case .result(let value) = reply { value["interrupted"]?.boolValue ?? false } else { false }
            // Only a run the worker stopped is followed up (a run it found ended, or not begun,
            // goes on as the answer says).
            if interrupted { self?.followUp(id, run, generation: generation) }
            answered?(interrupted)
        }
        if worker.send("code.interrupt", ["context": .string(workerContext)], Worker.Pending(notification: { _, _ in }, reply: reply)) == nil {
            answered?(false)  // the worker has ended: its run is answered `crashed`
            return true
        }
        // A worker that does not answer within the grace period (stopped by SIGSTOP, its reader
        // stuck) cannot stop its run either: the run ends with the worker, as one that did not
        // stop after the interrupt does (its answer was never sent, nor any follow-up).
        timers.asyncAfter(deadline: .now() + configuration.gracePeriod.inSeconds) { [weak self] in
            guard settled.claim() else { return }
            guard let self, !run.relay.isFinished else {
                answered?(false)
                return
            }
            end(id, run, generation: generation, because: .interrupted)
            answered?(true)
        }
        return true
    }

    /// An interrupted run still going after the grace period: the worker is ended. The worker
    /// repeats the interrupt itself every 250 ms meanwhile (its own watchdog, as in a namespace
    /// context); repeats sent from here too came in step with those, two stops at once, the
    /// second raised in the code's handler of the first.
    private func followUp(_ id: String, _ run: ActiveRun, generation: Int) {
        timers.asyncAfter(deadline: .now() + configuration.gracePeriod.inSeconds) { [weak self] in
            guard let self, !run.relay.isFinished else { return }
            end(id, run, generation: generation, because: .interrupted)
        }
    }

    private func armDeadline(_ id: String, _ run: ActiveRun, generation: Int) {
        if let limit = run.cpuTimeLimit, let pid = state.withLock({ $0.contexts[id]?.worker?.pid }), let baseline = Self.cpuTime(of: pid) {
            watchCPU(id, run, generation: generation, pid: pid, until: baseline + limit.inSeconds)
        }
        guard let timeout = run.timeout else { return }
        let deadline = ContinuousClock.now + timeout
        // The worker stops the run at its timeout: its answer, after the output it had produced,
        // may pass the bound of unread output (a slow reader must not make it look stuck). The
        // grace period's end kills the worker when no answer came.
        run.armBackstop(on: deadlines, at: deadline) { [weak self] in
            guard let self, !run.relay.isFinished else { return }
            run.relay.requestStop()
            run.armBackstop(on: deadlines, at: deadline + configuration.gracePeriod) { [weak self] in
                guard let self, !run.relay.isFinished else { return }
                end(id, run, generation: generation, because: .timeout)
            }
        }
    }

    /// Every 50 ms while `run` goes on: past `limit` seconds of the worker's CPU time, it is ended.
    private func watchCPU(_ id: String, _ run: ActiveRun, generation: Int, pid: Int32, until limit: Double) {
        timers.asyncAfter(deadline: .now() + .milliseconds(50)) { [weak self] in
            guard let self, !run.relay.isFinished, let used = Self.cpuTime(of: pid) else { return }
            if used > limit {
                end(id, run, generation: generation, because: .cpuTimeLimit)
            } else {
                watchCPU(id, run, generation: generation, pid: pid, until: limit)
            }
        }
    }

    /// User plus system CPU seconds of a process (all its threads), from `/proc/PID/stat`.
    private static func cpuTime(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Kills the context's worker when `run` is still its run in progress.
    private func end(_ id: String, _ run: ActiveRun, generation: Int, because ending: Ending) {
        let ended = state.withLock { state -> (worker: Worker, runs: [ActiveRun])? in
            guard var record = state.contexts[id], record.generation == generation,
                  record.runs.first === run, record.ending == nil, let worker = record.worker else { return nil }
            record.ending = ending
            state.contexts[id] = record
            return (worker, record.runs)
        }
        guard let (worker, runs) = ended else { return }
        logger.warning("context \(id): \(ending == .cpuTimeLimit ? "the run used up its CPU time" : "the run did not stop within the grace period"); killing worker \(worker.pid)")
        worker.kill()
        // The worker's exit is handled by its reader thread, which answers the runs: a reader of
        // the run that does not read (it holds the run) must not keep it waiting for room.
        for run in runs { run.relay.releaseProducer() }
    }

    private func runAnswered(_ id: String, _ run: ActiveRun, _ reply: WorkerReply, generation: Int, workerContext: String) {
        switch reply {
        case .ended:
            return  // answered by workerExited
        case .result(let result):
            let next = dequeue(run, of: id, generation: generation, executionCount: result["execution_count"]?.intValue)
            run.finish(.result(result))
            proceed(next, in: id, generation: generation)
        case .error(let error):
            let next = dequeue(run, of: id, generation: generation, executionCount: nil)
            // The worker's message names its own context: the client's is named instead.
            var message = (error["message"]?.stringValue ?? "The worker failed.")
                .replacingOccurrences(of: "context \(workerContext)", with: "context \(id)")
            // A working directory gone: `context.restart` is a way out too, while the directory
            // the context was created in (where a fresh worker starts) is there.
            if error["data"]?["reason"]?.stringValue == IsolationError.Code.invalidCwd.rawValue,
                let created = state.withLock({ $0.contexts[id]?.cwd }), Self.isDirectory(created), message.hasSuffix(".")
            {
                message = String(message.dropLast()) + "; context.restart starts it afresh in \(created), the directory it was created in."
            }
            run.finish(.error(code: error["code"]?.intValue ?? -32603, message: message, data: error["data"]))
            proceed(next, in: id, generation: generation)
        }
    }

    private func workerExited(_ worker: Worker) {
        let exit = worker.exit ?? .exited(-1)
        var failedAtStart = false
        let found = state.withLock { state -> Record? in
            if let index = state.pool.firstIndex(where: { $0.worker === worker }) {
                if !state.pool[index].ready && !state.shuttingDown {
                    state.spawnFailures += 1
                    failedAtStart = true
                }
                state.pool.remove(at: index)
            }
            guard let id = state.byWorker.removeValue(forKey: worker.pid), var record = state.contexts[id] else { return nil }
            let ending = record.ending
            let runs = record.runs
            record.runs = []
            record.unsent = []
            record.sendingWaiting = false
            Self.answerNotInterrupted(record.interruptWhenBound)
            record.interruptWhenBound = nil
            record.deadReason = switch ending {
            case .timeout: "its run did not stop within the grace period after its timeout"
            case .cpuTimeLimit: "its run used more CPU time than the context's limit"
            case .interrupted: "its run did not stop within the grace period after an interrupt"
            case .deleted, .shutdown: "it was deleted"
            case nil: "its worker process \(exit)"
            }
            state.contexts[id] = record
            var answered = record
            answered.runs = runs
            return answered
        }
        guard let record = found else {
            if failedAtStart {
                let tail = worker.stderrTail.joined(separator: "\n")
                logger.error("a pool worker \(exit) before it was ready\(tail.isEmpty ? "" : ": " + tail)")
            }
            // Three workers in a row that die at start: stop refilling until a context is created.
            if state.withLock({ !$0.shuttingDown && $0.spawnFailures < 3 }) { refill() }
            return
        }
        if record.ending == nil {
            logger.warning("context \(record.id): worker \(worker.pid) \(exit)")
        }
        answer(record.runs, of: record.id, ending: record.ending, exit: exit, stderr: worker.stderrTail, executionCount: record.executionCount,
               cpuTimeLimit: record.cpuTimeLimit)
    }

    /// Answers the runs of context `id` whose worker ended: the first (in progress) with a result
    /// saying why, the queued ones with `context_dead` (or `context_deleted`).
    private func answer(
        _ runs: [ActiveRun], of id: String, ending: Ending?, exit: WorkerExit?, stderr: [String] = [], executionCount: Int = 0,
        cpuTimeLimit: Duration? = nil
    ) {
        guard let first = runs.first else { return }
        let elapsed = ContinuousClock.now - first.started
        let grace = configuration.gracePeriod.inSeconds
        let (status, name, value): (String, String, String) = switch ending {
        case .timeout:
            ("timeout", "TimeoutError", "The run did not stop within \(grace) s after its timeout: its worker process was killed and the context's state is lost (context.restart gives it a fresh one).")
        case .cpuTimeLimit:
            ("timeout", "TimeoutError", "The run used more than its \(cpuTimeLimit?.inSeconds ?? 0) s of CPU time: its worker process was killed and the context's state is lost (context.restart gives it a fresh one).")
        case .interrupted:
            ("interrupted", "KeyboardInterrupt", "The run did not stop within \(grace) s after the interrupt: its worker process was killed and the context's state is lost (context.restart gives it a fresh one).")
        case .deleted, .shutdown:
            ("interrupted", "KeyboardInterrupt", "The context was deleted (or the server shut down) while the run was in progress; its worker process was killed.")
        case nil:
            ("crashed", "WorkerCrashed", "The worker process \(exit?.description ?? "ended")"
                + (stderr.isEmpty ? "" : "; its last stderr lines:\n" + stderr.joined(separator: "\n"))
                + "\nThe context's state is lost (context.restart gives it a fresh one).")
        }
        // The output kept is taken with the answer: a chunk the worker's reader relays meanwhile
        // is either in both the notifications and the result, or in neither.
        first.finish { out, err, results in
            var result: JSONObject = [
                "status": .string(status), "stdout": .string(out.text()), "stderr": .string(err.text()),
                "stdout_truncated": .bool(out.isTruncated), "stderr_truncated": .bool(err.isTruncated),
                "stdout_omitted_bytes": .integer(Int64(out.omittedBytes)), "stderr_omitted_bytes": .integer(Int64(err.omittedBytes)),
            ]
            // As a namespace context's result: only a stream cut says where.
            if out.isTruncated { result["stdout_head_bytes"] = .integer(Int64(out.keptHeadBytes)) }
            if err.isTruncated { result["stderr_head_bytes"] = .integer(Int64(err.keptHeadBytes)) }
            // As a namespace context's stop records: a KeyboardInterrupt's value is empty, what
            // happened is its traceback's line.
            result["error"] = ["name": .string(name), "value": .string(name == "KeyboardInterrupt" ? "" : value),
                               "traceback": .string("\(name): \(value)\n")]
            result["execution_count"] = .integer(Int64(executionCount + 1))
            result["duration"] = .double((elapsed.inSeconds * 1e6).rounded() / 1e6)
            result["results"] = .array(results)
            return .result(.object(result))
        }
        // Queued runs never started: the namespace contexts' errors where they apply.
        let (code, reason, message): (Int, String, String) = switch ending {
        case .deleted: (-32004, "context_deleted", ErrorMessages.contextDeleted(id))
        case .shutdown: (-32005, "shutting_down", ErrorMessages.runNotStarted)
        default: (Self.contextDeadCode, IsolationError.Code.contextDead.rawValue, "The context's worker process ended before the run started.")
        }
        for run in runs.dropFirst() {
            run.finish(.error(code: code, message: message, data: ["reason": .string(reason)]))
        }
    }

    /// Answers runs that never started with a JSON-RPC error.
    private static func failUnstarted(_ runs: [ActiveRun], code: Int, reason: String, message: String) {
        for run in runs {
            run.finish(.error(code: code, message: message, data: ["reason": .string(reason)]))
        }
    }

    private static func failQueued(_ runs: [ActiveRun], id: String) {
        for run in runs {
            run.finish(.error(code: contextDeadCode, message: "The context \(id) was restarted before the run started.",
                                    data: ["reason": .string(IsolationError.Code.contextDead.rawValue)]))
        }
    }

    /// How long a refill waits after a worker was taken while the pool still has one.
    private static let refillDelay = DispatchTimeInterval.milliseconds(25)

    /// The cell a pool worker runs before it is ready: a `print` (its output, sent to nobody,
    /// goes through the worker's capture and `code.output` path) and a result. The first of each
    /// in a forked worker copies pages it shares with the fork server (a `print`: ~70 page
    /// faults, ~4 µs each on the machine measured), which a context's first run would otherwise
    /// pay; it adds ~0.1-0.2 MB to an idle worker's own memory. See Benchmarks/README.md,
    /// "Process contexts: the first result".
    static let warmUpCode = "print()\n1"

    /// The JSON-RPC code of `context_dead`.
    public static let contextDeadCode = -32006

    /// Whether `path` is a directory (following links), as a worker needs its working directory.
    private static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(StartDirectory.fileSystemPath(path), &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }

    private static func notFound(_ id: String) -> IsolationError {
        IsolationError(.contextNotFound, ErrorMessages.contextNotFound(id))
    }

    /// A context operation that needs a worker (create, restart) while the server shuts down.
    private static let startsNoWorker = IsolationError(.shuttingDown, ErrorMessages.startsNoWorker)

    /// `context_dead`, saying what can be done: `default` cannot be deleted, only restarted.
    private static func dead(_ id: String, _ reason: String) -> IsolationError {
        IsolationError(
            .contextDead,
            "The context \(id) is dead (\(reason)); context.restart gives it a fresh worker"
                + (id == "default" ? "." : ", context.delete removes it."))
    }

    // MARK: Shutdown

    /// The start of a shutdown, where it is asked for (a server's request reader: what it reads
    /// after is answered as after the shutdown, not raced with it): no run, creation or restart
    /// is taken from now on (`shuttingDown`), ``list()`` shows the contexts as they are now (but
    /// those deleted since), and ``contains(_:)`` names them. ``shutdown()`` begins with it.
    public func beginShutdown() {
        state.withLock { state in
            guard !state.shuttingDown else { return }
            state.atShutdown = Self.list(state)
            state.shuttingDown = true
        }
    }

    /// Ends every worker (answering runs in progress `interrupted`) and waits until they are reaped.
    public func shutdown() async {
        let (workers, forkServer) = endEveryWorker()
        let deadline = ContinuousClock.now + .seconds(2)
        while workers.contains(where: { $0.exit == nil }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        // The fork server kills what is left of its children, reaps them and exits.
        forkServer?.stop()
        while let forkServer, !forkServer.hasEnded, ContinuousClock.now < deadline + .seconds(1) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// What a shutdown does at once: no run, creation or restart is taken from now on; runs in
    /// progress are answered `interrupted`, queued and waiting ones `shutting_down`; every worker
    /// is killed and the timers stop. Returns the workers killed (to wait for) and the fork server
    /// (to stop once they are reaped).
    private func endEveryWorker() -> (workers: [Worker], forkServer: ForkServer?) {
        beginShutdown()
        let (records, pool, forkServer, waiters) = state.withLock { state in
            defer { state.contexts = [:]; state.byWorker = [:]; state.pool = []; state.waiters = [] }
            return (Array(state.contexts.values), state.pool.map(\.worker), state.forkServer, state.waiters)
        }
        for waiter in waiters { waiter.resume(returning: .failure(Self.startsNoWorker)) }
        for record in records {
            Self.answerNotInterrupted(record.interruptWhenBound)
            if record.starting {
                Self.failUnstarted(record.runs, code: -32005, reason: "shutting_down", message: ErrorMessages.runNotStarted)
            } else {
                answer(record.runs, of: record.id, ending: .shutdown, exit: nil, executionCount: record.executionCount)
            }
            record.worker?.kill()
        }
        pool.forEach { $0.kill() }
        deadlines.stop()
        return (records.compactMap(\.worker) + pool, forkServer)
    }

    /// Released without ``shutdown()``: what it does at once. The runs in flight are answered
    /// (their workers' answers would go nowhere: the tasks waiting for them would wait for ever),
    /// the workers are killed and the fork server is stopped (it reaps its children and exits);
    /// nothing is waited for.
    deinit {
        endEveryWorker().forkServer?.stop()
    }
}

extension Duration {
    fileprivate static func / (lhs: Duration, rhs: Duration) -> Double {
        lhs.inSeconds / rhs.inSeconds
    }
}

/// Which of two events came first: the first ``claim()`` gets `true`, every later one `false`.
private final class FirstOfTwo: Sendable {
    private let claimed = Atomic(false)

    func claim() -> Bool {
        !claimed.exchange(true, ordering: .acquiringAndReleasing)
    }
}
