import Glibc
import Synchronization

/// A snapshot of the processes in /proc: enough to find process trees and groups.
///
/// A snapshot can be incomplete: when this process is out of descriptors (EMFILE, ENFILE),
/// /proc cannot be listed, or a process's files cannot be opened. An incomplete snapshot says
/// nothing about the processes it misses (``isComplete``): an empty table read then is not
/// "no process left".
struct ProcessTable: Sendable {
    /// A process as opposed to a pid: the pid and its start time (clock ticks after boot),
    /// which a later process reusing the pid cannot share.
    struct Identity: Sendable, Hashable {
        var pid: pid_t
        var startTime: UInt64
    }

    struct Entry: Sendable {
        var pid: pid_t
        var parent: pid_t
        var group: pid_t
        var session: pid_t
        var state: UInt8
        var startTime: UInt64

        var identity: Identity { Identity(pid: pid, startTime: startTime) }

        /// Running, sleeping or stopped; not a zombie.
        var isAlive: Bool { state != UInt8(ascii: "Z") && state != UInt8(ascii: "X") }
    }

    var entries: [pid_t: Entry]

    /// Set when a read through this snapshot missed something for want of descriptors; shared
    /// by the copies of the snapshot (a `select` of ``ProcessKiller`` reading environments marks it).
    private let misses: Misses

    /// Whether the snapshot saw every process, and every environment read through it
    /// (``environment(of:contains:)``) was read: `false` when this process ran out of
    /// descriptors meanwhile.
    var isComplete: Bool { !misses.flag.load(ordering: .relaxed) }

    init(entries: [pid_t: Entry], isComplete: Bool = true) {
        self.entries = entries
        self.misses = Misses()
        if !isComplete { misses.flag.store(true, ordering: .relaxed) }
    }

    private final class Misses: Sendable {
        let flag = Atomic<Bool>(false)
    }

    /// Reads /proc now.
    static func snapshot() -> ProcessTable {
        var entries: [pid_t: Entry] = [:]
        guard let dir = opendir("/proc") else { return ProcessTable(entries: [:], isComplete: false) }
        defer { closedir(dir) }
        var complete = true
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            guard let pid = pid_t(name) else { continue }
            switch read(pid) {
            case .found(let e): entries[pid] = e
            case .gone: break
            case .unreadable: complete = false
            }
        }
        return ProcessTable(entries: entries, isComplete: complete)
    }

    /// What reading a process's /proc entry gave.
    enum ReadOutcome {
        case found(Entry)
        /// No such process (any more).
        case gone
        /// Not read: this process is out of descriptors (the process may well exist).
        case unreadable
    }

    /// Parses /proc/<pid>/stat, or says why it could not.
    static func read(_ pid: pid_t) -> ReadOutcome {
        guard let bytes = Posix.readSmallFile("/proc/\(pid)/stat", limit: 4096) else {
            return Posix.isOutOfDescriptors(errno) ? .unreadable : .gone
        }
        return parse(pid, bytes).map { .found($0) } ?? .gone
    }

    /// Parses /proc/<pid>/stat ("pid (comm) state ppid pgrp session ... starttime ..."; comm may hold
    /// spaces and parentheses; starttime is field 22, the 20th after comm); `nil` when it cannot
    /// be read, for whatever reason (``read(_:)`` tells them apart).
    static func readEntry(_ pid: pid_t) -> Entry? {
        guard let bytes = Posix.readSmallFile("/proc/\(pid)/stat", limit: 4096) else { return nil }
        return parse(pid, bytes)
    }

    private static func parse(_ pid: pid_t, _ bytes: [UInt8]) -> Entry? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 20, let state = fields[0].first,
            let parent = pid_t(String(decoding: fields[1], as: UTF8.self)),
            let group = pid_t(String(decoding: fields[2], as: UTF8.self)),
            let session = pid_t(String(decoding: fields[3], as: UTF8.self)),
            let startTime = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return Entry(pid: pid, parent: parent, group: group, session: session, state: state, startTime: startTime)
    }

    /// Whether the environment of `pid` holds the entry `entry` (`NAME=value`, exactly); `nil`
    /// when it could not be read for want of descriptors (another user's process, or one gone,
    /// is `false`).
    static func environment(of pid: pid_t, contains entry: [UInt8]) -> Bool? {
        guard let bytes = Posix.readSmallFile("/proc/\(pid)/environ", limit: 1 << 18) else {
            return Posix.isOutOfDescriptors(errno) ? nil : false
        }
        for variable in bytes.split(separator: 0, omittingEmptySubsequences: true)
        where variable.count == entry.count && variable.elementsEqual(entry) {
            return true
        }
        return false
    }

    /// ``environment(of:contains:)`` read as part of this snapshot: one that could not be read
    /// makes the snapshot incomplete (and counts as `false`).
    func environment(of pid: pid_t, contains entry: [UInt8]) -> Bool {
        guard let found = Self.environment(of: pid, contains: entry) else {
            misses.flag.store(true, ordering: .relaxed)
            return false
        }
        return found
    }


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

    /// The entries of `pids` (those in the snapshot), each after its ancestors: ordered by how
    /// many ancestors a process has in the snapshot.
    func parentsFirst(_ pids: Set<pid_t>) -> [Entry] {
        func depth(_ entry: Entry) -> Int {
            var depth = 0
            var parent = entry.parent
            // Bounded: a snapshot read over time could show a loop of reused pids.
            while depth < entries.count, let next = entries[parent] {
                depth += 1
                parent = next.parent
            }
            return depth
        }
        return pids.compactMap { entries[$0] }.map { (entry: $0, depth: depth($0)) }.sorted { $0.depth < $1.depth }.map(\.entry)
    }

    /// Live members of the given process groups.
    func members(ofGroups groups: Set<pid_t>) -> Set<pid_t> {
        Set(entries.values.filter { groups.contains($0.group) && $0.isAlive }.map(\.pid))
    }

    /// Live members of the session whose leader is `leader` (every process group of a terminal's jobs).
    func members(ofSession leader: pid_t) -> Set<pid_t> {
        Set(entries.values.filter { $0.session == leader && $0.isAlive }.map(\.pid))
    }

}
