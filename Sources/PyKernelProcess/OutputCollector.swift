import PyKernelSupport
import Synchronization

/// Collects a pump's output in memory under the one output rule (`HeadTailBuffer`): each
/// stream and the interleaved one keep their first and last bytes and count what was cut.
final class OutputCollector: Sendable {
    private struct Buffers {
        var stdout: HeadTailBuffer
        var stderr: HeadTailBuffer
        var combined: HeadTailBuffer
    }

    private let buffers: Mutex<Buffers>

    init(limit: Int) {
        buffers = Mutex(Buffers(
            stdout: HeadTailBuffer(limit: limit), stderr: HeadTailBuffer(limit: limit), combined: HeadTailBuffer(limit: limit)))
    }

    func append(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        buffers.withLock { b in
            switch stream {
            case .stdout: b.stdout.append(bytes)
            case .stderr: b.stderr.append(bytes)
            }
            b.combined.append(bytes)
        }
    }

    /// The collected output as a result.
    func result(exitCode: Int32, timedOut: Bool) -> ExecResult {
        buffers.withLock { b in
            ExecResult(
                exitCode: exitCode, result: b.combined.text(), stdout: b.stdout.text(), stderr: b.stderr.text(),
                timedOut: timedOut, resultOmittedBytes: b.combined.omittedBytes, stdoutOmittedBytes: b.stdout.omittedBytes,
                stderrOmittedBytes: b.stderr.omittedBytes)
        }
    }
}
