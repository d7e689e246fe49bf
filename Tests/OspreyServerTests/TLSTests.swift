import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import NIOCore
import NIOSSL
@testable import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// `serve --tls-cert/--tls-key` (``ServerTLS``): a live server on 127.0.0.1 speaks HTTPS with
/// the given certificate, on the fast path and the router alike, and nothing else; bad files are
/// refused with the file and the problem named. The certificates are made by the `openssl`
/// command for each test.
@Suite(.enabled(if: TLSFiles.opensslPath != nil, "needs the openssl command"))
struct TLSTests {
    /// A plain-HTTP request gets no HTTP answer; predict (on the fast path, when it is on),
    /// model info and /metrics (the router) are answered over HTTPS, to a client that trusts
    /// only the test's certificate.
    @Test(arguments: [true, false])
    func bothPathsAnswerOverHTTPS(fastPath: Bool) async throws {
        let files = try TLSFiles()
        defer { files.remove() }
        let tls = try ServerTLS(certificateFile: files.certificate, keyFile: files.key)
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), logger: quiet)
        let app = buildApplication(manager: manager, configuration: .init(port: 0, fastPath: fastPath, tls: tls), logger: quiet)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.certificate))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: clientTLS))
        let uid = t.ratings[0].uid
        do {
            // `.ahc(.https)` starts the server and gives its port; its own client (which checks no
            // certificate) is not used.
            try await app.test(.ahc(.https)) { unused in
                let base = "https://127.0.0.1:\(try #require(unused.port))"
                func get(_ path: String) async throws -> (status: Int, body: String) {
                    let response = try await client.execute(HTTPClientRequest(url: base + path), timeout: .seconds(20))
                    return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
                }
                func fastPathCount() async throws -> Int {
                    let line = try await get("/metrics").body.split(separator: "\n").first { $0.hasPrefix("osprey_http_fast_path_requests_total ") }
                    return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
                }
                let plain = try await FastPathTests.exchange(
                    port: try #require(unused.port), send: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", until: { $0.hasPrefix("HTTP/") })
                #expect(!plain.hasPrefix("HTTP/"), "plain HTTP got an answer: \(plain)")

                let before = try await fastPathCount()
                let predict = try await get("/v1/models/demo/users/\(uid)/predict?item=i1")
                #expect(predict.status == 200 && predict.body.contains(#""score":"#), "\(predict)")
                #expect(try await fastPathCount() - before == (fastPath ? 1 : 0), "answered on the fast path when it is on")
                let info = try await get("/v1/models/demo")
                #expect(info.status == 200 && info.body.contains(#""versions""#), "\(info)")
            }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    /// Each problem a user can have with the two files, named with the file.
    @Test func badFilesAreRefusedWithTheFileAndTheProblem() throws {
        let files = try TLSFiles()
        defer { files.remove() }
        func refusal(_ certificate: String, _ key: String) -> ServerTLSError? {
            do {
                _ = try ServerTLS(certificateFile: certificate, keyFile: key)
                return nil
            } catch {
                return error
            }
        }
        let text = files.directory + "/notes.txt"
        try "not a certificate\n".write(toFile: text, atomically: true, encoding: .utf8)
        let missing = files.directory + "/none.pem"
        let cases: [(String, String, ServerTLSError.Kind, String, String)] = [
            (missing, files.key, .certificate, missing, "does not exist"),
            (files.certificate, missing, .privateKey, missing, "does not exist"),
            (files.directory, files.key, .certificate, files.directory, "is a directory"),
            (text, files.key, .certificate, text, "holds no PEM certificate"),
            (files.key, files.key, .certificate, files.key, "holds no PEM certificate"),
            (files.certificate, text, .privateKey, text, "holds no PEM private key"),
            (files.certificate, files.certificate, .privateKey, files.certificate, "holds no PEM private key"),
            (files.certificate, files.otherKey, .privateKey, files.otherKey, "is not the private key of the certificate in \(files.certificate)"),
        ]
        for (certificate, key, kind, file, problem) in cases {
            let error = try #require(refusal(certificate, key), "\(certificate) \(key)")
            #expect(error.kind == kind && error.file == file && error.problem.hasPrefix(problem), "\(error)")
        }
        #expect(refusal(files.certificate, files.key) == nil)
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, its key and an unrelated key, made
/// by `openssl` in a temporary directory.
struct TLSFiles {
    let directory: String
    var certificate: String { directory + "/cert.pem" }
    var key: String { directory + "/key.pem" }
    var otherKey: String { directory + "/other-key.pem" }

    static let opensslPath = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    init() throws {
        directory = NSTemporaryDirectory() + "osprey-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
                          "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", otherKey])
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(opensslPath))
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl \(arguments.joined(separator: " "))")
    }
}
