import Glibc

/// A snapshot of the processes in /proc: enough to find process trees and groups.
struct ProcessTable: Sendable {
    struct Entry: Sendable {
        var pid: pid_t
        var parent: pid_t
        var group: pid_t
        var state: UInt8

        /// Running, sleeping or stopped; not a zombie.
        var isAlive: Bool { state != UInt8(ascii: "Z") && state != UInt8(ascii: "X") }
    }

    var entries: [pid_t: Entry]

    /// Reads /proc now.
    static func snapshot() -> ProcessTable {
        var entries: [pid_t: Entry] = [:]
        guard let dir = opendir("/proc") else { return ProcessTable(entries: [:]) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            guard let pid = pid_t(name) else { continue }
            if let e = readEntry(pid) { entries[pid] = e }
        }
        return ProcessTable(entries: entries)
    }

    /// Parses /proc/<pid>/stat ("pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses).
    static func readEntry(_ pid: pid_t) -> Entry? {
        guard let bytes = Posix.readSmallFile("/proc/\(pid)/stat", limit: 4096),
            let close = bytes.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 3, let state = fields[0].first,
            let parent = pid_t(String(decoding: fields[1], as: UTF8.self)),
            let group = pid_t(String(decoding: fields[2], as: UTF8.self))
        else { return nil }
        return Entry(pid: pid, parent: parent, group: group, state: state)
    }

    /// Whether the environment of `pid` holds the entry `entry` (`NAME=value`, exactly).
    static func environment(of pid: pid_t, contains entry: [UInt8]) -> Bool {
        guard let bytes = Posix.readSmallFile("/proc/\(pid)/environ", limit: 1 << 18) else { return false }
        for variable in bytes.split(separator: 0, omittingEmptySubsequences: true)
        where variable.count == entry.count && variable.elementsEqual(entry) {
            return true
        }
        return false
    }

    /// Whether `pid` exists and is not a zombie.
    static func isAlive(_ pid: pid_t) -> Bool { readEntry(pid)?.isAlive ?? false }

    /// All descendants of `roots` (the roots themselves excluded), alive or not.
    func descendants(of roots: Set<pid_t>) -> Set<pid_t> {
        var children: [pid_t: [pid_t]] = [:]
        for e in entries.values { children[e.parent, default: []].append(e.pid) }
        var result = Set<pid_t>()
        var queue = Array(roots)
        while let p = queue.popLast() {
            for c in children[p] ?? [] where !result.contains(c) && !roots.contains(c) {
                result.insert(c)
                queue.append(c)
            }
        }
        return result
    }

    /// Live members of the given process groups.
    func members(ofGroups groups: Set<pid_t>) -> Set<pid_t> {
        Set(entries.values.filter { groups.contains($0.group) && $0.isAlive }.map(\.pid))
    }

    func isAlive(_ pid: pid_t) -> Bool { entries[pid]?.isAlive ?? false }
}

/// Terminates a changing set of processes: `SIGTERM`, a grace period, then `SIGKILL`, re-reading
/// /proc every 20 ms so that processes forked meanwhile are caught too.
enum ProcessKiller {
    /// - Parameters:
    ///   - grace: seconds between `SIGTERM` and `SIGKILL`.
    ///   - hardLimit: seconds after the grace period before giving up on unkillable processes.
    ///   - select: given a fresh snapshot, the pids that must end (may grow between calls).
    /// - Returns: whether every selected process ended.
    @discardableResult
    static func terminate(
        grace: Double, hardLimit: Double = 3, select: @escaping @Sendable (ProcessTable) -> Set<pid_t>
    ) async -> Bool {
        let me = getpid()
        let start = monotonicNow()
        var termed = Set<pid_t>()
        var killing = false
        while true {
            let targets = await Blocking.run { () -> Set<pid_t> in
                let table = ProcessTable.snapshot()
                return select(table).filter { table.isAlive($0) && $0 != me && $0 > 1 }
            }
            if targets.isEmpty { return true }
            let elapsed = monotonicNow() - start
            if !killing && elapsed >= grace { killing = true }
            if killing {
                for pid in targets { _ = kill(pid, SIGKILL) }
            } else {
                for pid in targets where !termed.contains(pid) {
                    _ = kill(pid, SIGTERM)
                    termed.insert(pid)
                }
            }
            if elapsed >= grace + hardLimit { return false }
            await pause(0.02)
        }
    }
}
