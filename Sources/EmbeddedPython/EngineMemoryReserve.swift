@preconcurrency import CPython
import Glibc
import Synchronization

/// Address space kept for the engine under a limit on the process's address space (`RLIMIT_AS`:
/// a process context's `memory_limit_mb`, or one the code sets itself).
///
/// Such a limit is the whole process's: code that fills it to the last page leaves the engine's
/// own Swift code no memory to end the run with, and a Swift allocation that fails aborts the
/// process. So the process keeps a reserve: an untouched, inaccessible mapping (address space
/// only, no memory) made as Python starts, before any limit, so a limit set from the process's
/// size counts it. When the address space runs out, the reserve is unmapped and the engine has
/// that much room to end the run (describe the `MemoryError`, answer).
///
/// The address space runs out when an allocation of Python's smaller than ``headroom`` fails
/// (watched in a process under a limit, or whose code set one: ``watchAllocations()``), or, checked as the code ends (``codeEnded()``), when there is not
/// ``headroom`` left (an allocator of native code's own, a `MemoryError` the code kept quiet).
/// Before a later run's code the reserve is mapped again (``restoreBeforeCode()``): whole when
/// there is room for it and ``headroom`` more (the code's data were freed), else as much of the
/// room as leaves the code some (the code's data still fill the limit: its next allocations fail
/// soon, as they would have, and the engine gets its room back).
package enum EngineMemoryReserve {
    /// The reserve's size: what the engine may need to end a run with the address space full
    /// (a new thread's stack among it).
    package static let size = 32 << 20
    /// The room a process under a limit should have besides the reserve: less means the code
    /// filled the address space, and the reserve is released.
    package static let headroom = 8 << 20
    /// The reserve is mapped in whole MiB.
    private static let unit = 1 << 20

    /// The reserve's address (page-aligned) with its size in MiB in the low bits, 0 while it is
    /// not mapped: one word, so a release unmaps what was mapped.
    private static let mapping = Atomic<UInt>(0)
    /// Whether Python's allocators are watched (``watchAllocations()``), set under the GIL.
    private nonisolated(unsafe) static var watching = false

    /// The reserve's size now, 0 when it is not mapped.
    package static var mappedSize: Int { Int(mapping.load(ordering: .acquiring) & 0xFFF) * unit }

    /// Maps the reserve (as Python starts, before any limit).
    static func mapInitially() {
        guard mappedSize == 0, let address = map(size) else { return }
        keep(address, size: size)
    }

    /// Before a run's code, in a process under a limit whose reserve was released or is partial:
    /// maps it whole when there is room for it and ``headroom`` more (the code's data were
    /// freed); else, when none is mapped, the room but a quarter of it (up to ``headroom``), when
    /// that is a MiB or more. Python's allocators are watched from then on in such a process
    /// (a limit it started with).
    package static func restoreBeforeCode() {
        guard hasAddressSpaceLimit else { return }
        watchAllocations()
        let mapped = mappedSize
        guard mapped < size else { return }
        if let address = map(size + headroom) {
            munmap(address + size, headroom)
            release()  // the partial reserve, if any
            keep(address, size: size)
        } else if mapped == 0 {
            let room = largestMappableUnits(below: (size + headroom) / unit) * unit
            let reserve = (room - min(headroom, room / 4)) / unit * unit
            guard reserve > 0, let address = map(reserve) else { return }
            keep(address, size: reserve)
        }
    }

    /// As a run's code ends (holding the GIL), in a process under a limit: watches Python's
    /// allocators from now on, and releases the reserve when less than ``headroom`` is left.
    package static func codeEnded() {
        guard hasAddressSpaceLimit else { return }
        watchAllocations()
        guard mappedSize > 0 else { return }
        if let probe = map(headroom) {
            munmap(probe, headroom)
        } else {
            release()
        }
    }

    /// As the code changes one of the process's resource limits (`resource.setrlimit`,
    /// `resource.prlimit`; holding the GIL): Python's allocators are watched from then on, so a
    /// limit set and filled within one run releases the reserve in time.
    package static func limitsChanging() {
        watchAllocations()
    }

    /// Unmaps the reserve, if mapped: callable from any thread, allocates nothing.
    static func release() {
        let released = mapping.exchange(0, ordering: .acquiringAndReleasing)
        guard released != 0 else { return }
        munmap(UnsafeMutableRawPointer(bitPattern: released & ~0xFFF), Int(released & 0xFFF) * unit)
    }

    private static func keep(_ address: UnsafeMutableRawPointer, size: Int) {
        let word = UInt(bitPattern: address) | UInt(size / unit)
        if !mapping.compareExchange(expected: 0, desired: word, ordering: .acquiringAndReleasing).exchanged {
            munmap(address, size)
        }
    }

    /// The most whole MiB (fewer than `limit`) one mapping may have now: a binary search.
    private static func largestMappableUnits(below limit: Int) -> Int {
        var (fits, fails) = (0, limit)
        while fails - fits > 1 {
            let middle = (fits + fails) / 2
            if let probe = map(middle * unit) {
                munmap(probe, middle * unit)
                fits = middle
            } else {
                fails = middle
            }
        }
        return fits
    }

    /// An inaccessible, unbacked mapping of `length` bytes (it counts towards `RLIMIT_AS` only).
    private static func map(_ length: Int) -> UnsafeMutableRawPointer? {
        let mapping = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        return mapping == MAP_FAILED ? nil : mapping
    }

    private static var hasAddressSpaceLimit: Bool {
        var limit = rlimit()
        return getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0 && limit.rlim_cur != rlim_t.max  // RLIM_INFINITY
    }

    /// Wraps Python's object and memory allocators (once, holding the GIL) so that a failed
    /// allocation smaller than ``headroom`` releases the reserve at once: before the
    /// `MemoryError` is raised, so the engine's other threads (the output's) have room while the
    /// code handles it. Processes without a limit never pay for the wrapper.
    private static func watchAllocations() {
        guard !watching else { return }
        watching = true
        for domain in [PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ] {
            // The wrapped allocator, read by the wrapper for the rest of the process's life.
            let watched = UnsafeMutablePointer<pykernel_watched_allocator>.allocate(capacity: 1)
            watched.initialize(to: pykernel_watched_allocator(wrapped: PyMemAllocatorEx(), small: headroom, failed: releaseEngineMemoryReserve))
            PyMem_GetAllocator(domain, &watched.pointee.wrapped)
            var watcher = pykernel_watching_allocator(watched)
            PyMem_SetAllocator(domain, &watcher)
        }
    }
}

/// ``EngineMemoryReserve/release()`` as a C function (Python's allocator wrapper calls it).
private func releaseEngineMemoryReserve() {
    EngineMemoryReserve.release()
}
