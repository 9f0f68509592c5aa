import ContainerEngine
import LinuxAudit

/// STATE_DIR: the single-instance lock (contidd.lock, holding the pid), the registry
/// snapshot that survives kill -9, and the kernel state as found (kernel.state, kept
/// by `KernelAuditSession`).
final class StateDirectory {
    let path: String
    private var lock: LockFile?

    init(path: String) { self.path = path }

    var snapshotPath: String { path + "/registry.snapshot" }

    /// Creates the directory (0700) and takes the lock, before kernel.state, the
    /// snapshot or the socket are touched: one contidd per state directory.
    func claim() throws {
        try FileSystem.makeDirectories(path, mode: 0o700)
        do {
            lock = try LockFile(path: path + "/contidd.lock")
        } catch LockFile.Failure.held(_, let holder) {
            throw DaemonError.anotherContidd(pid: holder, stateDirectory: path)
        }
    }

    /// The registry as saved, its dead processes dropped; empty when there is none
    /// or it cannot be read (said why).
    func loadRegistry(isAlive: (ProcessKey) -> Bool) -> ContainerRegistry {
        guard let bytes = try? FileSystem.read(snapshotPath) else { return ContainerRegistry() }
        do {
            let r = try ContainerRegistry.restore(from: bytes, isAlive: isAlive)
            Log.info("restored \(r.containerCount) containers, \(r.processCount) live processes from \(snapshotPath) (\(r.diedUnseen) exited meanwhile)")
            return r
        } catch {
            Log.error("\(error); starting with an empty registry")
            return ContainerRegistry()
        }
    }

    func save(_ registry: ContainerRegistry) {
        do { try FileSystem.writeAtomically(registry.snapshot(), to: snapshotPath) } catch {
            Log.error("saving the registry: \(error)")
        }
    }
}
