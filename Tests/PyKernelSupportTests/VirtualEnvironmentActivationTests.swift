import PyKernelSupport
import Testing

@Suite("Virtual environment activation: what `source <venv>/bin/activate` sets")
struct VirtualEnvironmentActivationTests {
    @Test func setsVirtualEnvPutsItsBinFirstAndRemovesPythonHome() {
        let changes = VirtualEnvironmentActivation.changes(
            activating: "/srv/venv", over: ["PATH": "/usr/bin:/bin", "PYTHONHOME": "/opt/python", "HOME": "/root"])
        #expect(changes.set == ["VIRTUAL_ENV": "/srv/venv", "PATH": "/srv/venv/bin:/usr/bin:/bin"])
        #expect(changes.unset == ["PYTHONHOME"])
    }

    /// A server started from the activated environment (its `bin` already first) keeps its `PATH`.
    @Test(arguments: ["/srv/venv/bin:/usr/bin", "/srv/venv/bin", "/srv/venv/bin/:/usr/bin", "/srv//venv/./bin:/usr/bin"])
    func doesNotDoubleABinAlreadyFirst(path: String) {
        let changes = VirtualEnvironmentActivation.changes(activating: "/srv/venv", over: ["PATH": path, "VIRTUAL_ENV": "/srv/venv"])
        #expect(changes.set == ["VIRTUAL_ENV": "/srv/venv"])
        #expect(changes.unset.isEmpty)
    }

    /// Another environment's `bin` first (a shell activated elsewhere): this one's goes before it,
    /// as its `activate` script would put it.
    @Test func putsItsBinBeforeAnotherEnvironments() {
        let changes = VirtualEnvironmentActivation.changes(
            activating: "/srv/venv", over: ["PATH": "/srv/other/bin:/usr/bin:/srv/venv/bin", "VIRTUAL_ENV": "/srv/other"])
        #expect(changes.set == ["VIRTUAL_ENV": "/srv/venv", "PATH": "/srv/venv/bin:/srv/other/bin:/usr/bin:/srv/venv/bin"])
    }

    /// No `PATH` (or an empty one): the bin and the shell's default search path, never an empty
    /// entry, which would search the working directory.
    @Test(arguments: [nil, ""] as [String?])
    func searchesTheDefaultPathWithoutOne(path: String?) {
        let changes = VirtualEnvironmentActivation.changes(activating: "/srv/venv", over: path.map { ["PATH": $0] } ?? [:])
        #expect(changes.set["PATH"] == "/srv/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    @Test(arguments: [
        ("venv", "/work", "/work/venv"), ("./venv/", "/work", "/work/venv"), ("../venv", "/work/sub", "/work/venv"),
        ("/srv//venv/", "/work", "/srv/venv"), ("/srv/venv/..", "/work", "/srv"), ("..", "/", "/"),
    ])
    func makesPathsAbsoluteAsAbspath(path: String, directory: String, expected: String) {
        #expect(VirtualEnvironmentActivation.absolutePath(path, in: directory) == expected)
    }
}
