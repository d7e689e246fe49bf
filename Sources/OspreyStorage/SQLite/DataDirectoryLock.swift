import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The exclusive lock on a data directory: an `flock(LOCK_EX | LOCK_NB)` on the file
/// `osprey.lock` inside it, held until this object is released (the four stores of an exclusive
/// ``SQLiteStores`` keep it alive). So a second process that would write the directory (another
/// `osprey serve`, an offline `osprey retrain`, a `train` into it) fails at once instead of
/// writing beside the first (docs/operations.md, "Where the data lives").
///
/// The kernel releases an `flock` when its process ends, however it ends (SIGKILL, a crash), so a
/// lock file left behind never blocks. The holder writes its PID into the file, for the message
/// a refused opener gets. Locks taken through separate opens of the file conflict even within one
/// process.
public final class DataDirectoryLock: Sendable {
    /// The lock file's name inside a data directory.
    public static let fileName = "osprey.lock"

    /// The lock file.
    public let path: String
    private let descriptor: Int32

    /// Takes the lock on `directory` (which must exist), without waiting.
    /// - Throws: ``StorageError`` `.locked` when another process (or another open in this one)
    ///   holds it, naming the directory and the holder's PID when known; `.io` when the lock file
    ///   cannot be opened.
    public init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StorageError(.io, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            let holder = Self.holder(fd)
            close(fd)
            guard error == EWOULDBLOCK else {
                throw StorageError(.io, "cannot lock \(path): \(String(cString: strerror(error)))")
            }
            let pid = holder.map { " (pid \($0))" } ?? ""
            throw StorageError(.locked, "data directory \(directory) is in use by another Osprey process\(pid): "
                + "stop it first (only one process may write a data directory; `osprey models` reads it beside a server)")
        }
        descriptor = fd
        let text = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pwrite(fd, text, text.count, 0) }
    }

    deinit {
        // Emptied first, so a PID in the file always names a live holder or a crashed one.
        _ = ftruncate(descriptor, 0)
        close(descriptor)  // releases the flock
    }

    /// The process holding the lock on `directory` now (nil when nobody holds it, or the holder
    /// has not written its PID yet): a retrain worker checks that its server holds the directory
    /// before it writes beside it.
    public static func currentHolder(directory: String) -> Int32? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // A shared lock is refused only while an exclusive one is held.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return nil
        }
        return holder(fd)
    }

    /// The PID a holder wrote into the lock file, if it has written one yet.
    private static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Int32(text)
    }
}
