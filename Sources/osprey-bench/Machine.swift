#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the results were measured on and built with.
enum Machine {
    /// The whole text of a (small or moderately large) file, or nil.
    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Online processors, as `nproc` reports them.
    static var processors: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// `model name` from /proc/cpuinfo.
    static var cpuModel: String {
        field("model name") ?? "unknown"
    }

    /// The SIMD-relevant flags the host CPU advertises.
    static var simdFlags: String {
        guard let flags = field("flags")?.split(separator: " ").map(String.init) else { return "unknown" }
        let interesting = ["sse4_2", "avx", "avx2", "fma", "avx512f"]
        return interesting.map { flags.contains($0) ? $0 : "no-\($0)" }.joined(separator: " ")
    }

    static var loadAverage: String {
        guard let text = read("/proc/loadavg") else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// CPU time (seconds) used by the whole machine (all cores, not idle/iowait) and by this
    /// process, from /proc/stat and /proc/self/stat; nil where unavailable.
    static func cpuSeconds() -> (machine: Double, this: Double)? {
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard tick > 0,
              let stat = read("/proc/stat"), let line = stat.split(separator: "\n").first,
              let me = read("/proc/self/stat"), let close = me.lastIndex(of: ")")
        else { return nil }
        // cpu user nice system idle iowait irq softirq steal ...
        let f = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard f.count >= 8 else { return nil }
        let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
        // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let rest = me[me.index(after: close)...].split(separator: " ")
        guard rest.count >= 13, let utime = Double(rest[11]), let stime = Double(rest[12]) else { return nil }
        return (busy / tick, (utime + stime) / tick)
    }

    private static func field(_ name: String) -> String? {
        guard let text = read("/proc/cpuinfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters()
            }
        }
        return nil
    }

    /// The optimization mode this binary was compiled in.
    static var optimization: String {
        #if DEBUG
        return "debug (-Onone)"
        #else
        return "release (-O, whole-module)"
        #endif
    }

    static var compiler: String {
        #if compiler(>=6.4)
        return "Swift ≥ 6.4"
        #elseif compiler(>=6.3)
        return "Swift 6.3"
        #elseif compiler(>=6.2)
        return "Swift 6.2"
        #else
        return "Swift < 6.2"
        #endif
    }

    /// The `-target-cpu` OspreyMath and this tool were compiled for, read from the SwiftPM build
    /// description next to the executable (`<scratch>/release.yaml`); nil when not found.
    static var targetCPU: (description: String, found: Bool) {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return ("unknown (cannot locate executable)", false) }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // <scratch>/<triple>/<config>/osprey-bench
        var parts = exe.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4 else { return ("unknown", false) }
        let config = parts[parts.count - 2]
        parts.removeLast(3)
        let yaml = parts.joined(separator: "/") + "/\(config).yaml"
        guard let text = read(yaml) else { return ("unknown (no \(yaml))", false) }
        for line in text.split(separator: "\n") where line.contains("\"-module-name\",\"OspreyMath\"") {
            let args = line.split(separator: ",").map { $0.trimmingCharacters().trimmingQuotes() }
            if let i = args.firstIndex(of: "-target-cpu"), i + 1 < args.count {
                return ("-target-cpu \(args[i + 1])", true)
            }
            return ("default (baseline x86-64: SSE2, no AVX/FMA)", true)
        }
        return ("unknown (OspreyMath not in \(yaml))", false)
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "[" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "]" { s.removeLast() }
        return String(s)
    }

    func trimmingQuotes() -> String {
        var s = Substring(self)
        if s.first == "\"" { s.removeFirst() }
        if s.last == "\"" { s.removeLast() }
        return String(s)
    }
}
