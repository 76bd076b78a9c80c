import Glibc
import Synchronization

/// Where a ``StreamPump`` delivers a child's output: each chunk as it is read, then the end of
/// each stream. Called on the monitor thread.
protocol OutputSink: Sendable {
    /// The next bytes of `stream`, in the order they were read.
    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer)
    /// `stream` has ended (end-of-file, or the pump was stopped): nothing more comes from it.
    func end(_ stream: OutputStreamName)
}

/// Reads a child's stdout and stderr on the service's ``IOMonitor``, handing each chunk to a
/// sink in the order the bytes arrive. Ends at end-of-file on both, or at ``stop()`` (after one
/// last non-blocking read of what is already buffered). Closes both descriptors when it ends.
final class StreamPump: Sendable {
    typealias Sink = any OutputSink

    /// Fires when the pump has ended: `true` at end-of-file, `false` when stopped.
    let finished = Latch<Bool>()
    private let monitor: IOMonitor
    /// The descriptors still open (stdout, stderr), -1 once closed; touched on the monitor thread.
    private let open: Mutex<[Int32]>
    private let sink: Sink
    private static let streams: [OutputStreamName] = [.stdout, .stderr]

    /// - Parameters: stdoutFD, stderrFD: read ends, owned by the pump from now on.
    init(stdoutFD: Int32, stderrFD: Int32, monitor: IOMonitor, sink: Sink) {
        self.monitor = monitor
        self.sink = sink
        open = Mutex([stdoutFD, stderrFD])
        for (index, fd) in [stdoutFD, stderrFD].enumerated() {
            let watched = monitor.watch(fd) { [self] buffer in readable(index, fd, buffer) }
            if !watched { closed(index, fd, endOfFile: false) }
        }
    }

    private func readable(_ index: Int, _ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> IOMonitor.Next {
        let n = read(fd, buffer.baseAddress!, buffer.count)
        if n > 0 {
            sink.write(Self.streams[index], UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            return .keep
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .keep }
        closed(index, fd, endOfFile: true)
        return .close
    }

    /// Marks a descriptor closed; fires ``finished`` when both are.
    private func closed(_ index: Int, _ fd: Int32, endOfFile: Bool) {
        sink.end(Self.streams[index])
        let done = open.withLock { o -> Bool in
            o[index] = -1
            return o.allSatisfy { $0 < 0 }
        }
        if done { finished.fire(endOfFile) }
    }

    /// Ends the pump soon, after reading what is already in the pipes.
    func stop() {
        monitor.schedule { [self] in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IOMonitor.bufferSize, alignment: 16)
            defer { buffer.deallocate() }
            for (index, fd) in open.withLock({ $0 }).enumerated() where fd >= 0 {
                var reads = 0
                while reads < 256, case let n = read(fd, buffer.baseAddress!, buffer.count), n > 0 {
                    sink.write(Self.streams[index], UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    reads += 1
                }
                monitor.unwatch(fd, close: true)
                closed(index, fd, endOfFile: false)
            }
        }
    }
}

extension ChildProcess {
    /// Starts `spec` with its stdout and stderr on two new pipes, read by a pump into `sink`.
    /// The pipes are watched before the child starts, so reads follow the order bytes arrive in.
    static func spawn(
        _ spec: SpawnSpec, monitor: IOMonitor, output sink: StreamPump.Sink
    ) async throws(ProcessAPIError) -> (ChildProcess, StreamPump) {
        let out = try Posix.makePipe()
        let err: (read: Int32, write: Int32)
        do {
            err = try Posix.makePipe()
        } catch {
            for fd in [out.read, out.write] { Posix.closeQuietly(fd) }
            throw error
        }
        var spec = spec
        spec.stdout = out.write
        spec.stderr = err.write
        let pump = StreamPump(stdoutFD: out.read, stderrFD: err.read, monitor: monitor, sink: sink)
        do {
            return (try await spawn(spec, monitor: monitor), pump)
        } catch {
            pump.stop()
            throw error
        }
    }
}
