import Glibc
import Synchronization

/// The descriptors the engine opened while serving (a process API command's pipes and pidfds, a
/// session's FIFOs and logs, a PTY master, a process context's worker channel, the fork
/// server's socket), by number and by what each is (device, inode): in the process namespace
/// contexts share, the code's `os.close`, `os.closerange` and `os.dup2` leave them alone, as
/// they leave the ones open at set-up (the runtime's `note_engine_descriptors`).
///
/// Kept right after the engine opens one and forgotten right before it closes it; a number the
/// engine gave up and the code's file got since is the code's (its identity differs). A
/// descriptor is unprotected between its `open` and its ``keep(_:)``, microseconds.
package enum EngineDescriptors {
    private struct Identity: Equatable {
        var device: UInt
        var inode: UInt
    }

    private static let kept = Mutex<[Int32: Identity]>([:])

    /// Takes `descriptors` (negative ones ignored) as the engine's until ``forget(_:)``.
    package static func keep(_ descriptors: Int32...) {
        for descriptor in descriptors where descriptor >= 0 {
            guard let identity = identity(of: descriptor) else { continue }
            kept.withLock { $0[descriptor] = identity }
        }
    }

    /// Gives up `descriptors` (call it before closing them).
    package static func forget(_ descriptors: Int32...) {
        kept.withLock { kept in
            for descriptor in descriptors { kept.removeValue(forKey: descriptor) }
        }
    }

    /// Whether `descriptor` is one the engine keeps: kept under that number and still the same.
    package static func keeps(_ descriptor: Int32) -> Bool {
        guard let noted = kept.withLock({ $0[descriptor] }) else { return false }
        return identity(of: descriptor) == noted
    }

    /// In a process forked by user code (one thread: the forking one): closes every descriptor
    /// the engine keeps, still under its number, as python3's child has none of a server's (a
    /// child that kept the server's protocol output held the client's end of file back after the
    /// server exited, and the read end of its own output pipe never let its writes fail). The
    /// lock is only tried: a thread that held it at the fork is gone, and then nothing is closed.
    package static func closeInForkedChild() {
        let descriptors: [Int32: Identity]? = kept.withLockIfAvailable { $0 }
        for (descriptor, noted) in descriptors ?? [:] where identity(of: descriptor) == noted {
            close(descriptor)
        }
    }

    /// The event descriptors open now (epoll instances, eventfds, timerfds, signalfds): with
    /// ``keepEventDescriptors(except:)``, how the engine keeps those a library makes for itself on
    /// first use (swift-subprocess's monitors, Dispatch's timers), which it cannot keep as they
    /// are opened.
    package static func eventDescriptors() -> Set<Int32> {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        let ownDescriptor = dirfd(directory)
        var found: Set<Int32> = []
        var target = [CChar](repeating: 0, count: 64)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let descriptor = Int32(name), descriptor != ownDescriptor else { continue }
            let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            guard length > 0 else { continue }
            let link = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if ["anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]", "anon_inode:[signalfd]"].contains(link) {
                found.insert(descriptor)
            }
        }
        return found
    }

    /// Keeps the event descriptors open now that were not in `earlier` (``eventDescriptors()``).
    package static func keepEventDescriptors(except earlier: Set<Int32>) {
        for descriptor in eventDescriptors().subtracting(earlier) { keep(descriptor) }
    }

    private static func identity(of descriptor: Int32) -> Identity? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return Identity(device: UInt(status.st_dev), inode: UInt(status.st_ino))
    }
}
