import EmbeddedPython
import Glibc
import Synchronization

/// Tells the engine when user code starts processes (whose output arrives through the pipes, the
/// context's own: ``OutputHub/processStarting()``), changes the working directory or a resource
/// limit (``EngineMemoryReserve/limitsChanging()``), and refuses
/// its `open` of an engine's descriptor through `/proc` or `/dev/fd` (``EngineDescriptorPaths``),
/// through a C audit hook (PEP 578).
enum PythonAuditBridge {
    /// Adds the hook for the rest of the process (audit hooks cannot be removed).
    static func install() { PythonAudit.addHook(hook) }

    private static let hook: AuditHookPointer = { event, arguments, _ in
        guard let event else { return 0 }
        // Most events (`exec`, `compile`, `import`, `object.__getattr__`, ...) are not ours: only
        // look closer at `open`, `resource.setrlimit`, `resource.prlimit` and names starting with
        // "os.", "subprocess." or "ctypes.".
        let first = UInt8(bitPattern: event[0])
        if first == UInt8(ascii: "o"), strcmp(event, "open") == 0 {
            return EmbeddedRuntime.current.engineDescriptorPaths.check(arguments)
        }
        if first == UInt8(ascii: "r") {
            // A limit the code sets may be on the address space: the engine's reserve is watched for.
            if strcmp(event, "resource.setrlimit") == 0 || strcmp(event, "resource.prlimit") == 0 {
                EngineMemoryReserve.limitsChanging()
            }
            return 0
        }
        guard first == UInt8(ascii: "o") || first == UInt8(ascii: "s") || first == UInt8(ascii: "c") else { return 0 }
        let name = String(cString: event)
        if name == "os.chdir" || name == "os.fchdir" {
            // Another thread's change is its context's (``ContextSettings``), not the running one's.
            let runtime = EmbeddedRuntime.current
            if runtime.threadOwners.isInterpreterThread {
                runtime.directoryChanged.store(true, ordering: .relaxed)
            } else {
                runtime.threadMovedDirectory.store(true, ordering: .relaxed)
            }
            return 0
        }
        if name == "os.system" || name == "subprocess.Popen" || name == "os.posix_spawn"
            || name == "os.fork" || name == "os.spawn" || name == "os.forkpty"
        {
            EmbeddedRuntime.current.output.processStarting()
            EmbeddedRuntime.current.supervisor.processStarting()
        } else if name == "os.exec" || name == "ctypes.call_function" || name == "os.write" {  // os.write: raised by the runtime's
            EmbeddedRuntime.current.output.descriptorActivity.store(true, ordering: .relaxed)
        }
        return 0
    }
}
