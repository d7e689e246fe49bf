import Foundation
import NIOSSL

/// A certificate chain and its private key, read from PEM files, for a server that speaks HTTPS
/// (docs/operations.md, "TLS"). Everything a user can get wrong is found here, before the server
/// binds: a file that is missing or unreadable, one that holds no PEM certificate or key, and a
/// key that does not belong to the certificate.
public struct ServerTLS: Sendable {
    /// The PEM file of the certificate chain: the server's certificate first, then intermediates.
    public let certificateFile: String
    /// The PEM file of the certificate's private key (unencrypted).
    public let keyFile: String
    /// When the server's certificate expires.
    public let notValidAfter: Date
    /// NIOSSL's server settings: this chain and key, TLS 1.2 or later.
    let configuration: TLSConfiguration

    /// Reads and checks both files. O(file sizes); builds one TLS context to check the key.
    /// - Throws: ``ServerTLSError`` naming the file and what is wrong with it.
    public init(certificateFile: String, keyFile: String) throws(ServerTLSError) {
        let chainBytes = try Self.read(certificateFile, as: .certificate)
        let keyBytes = try Self.read(keyFile, as: .privateKey)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(chainBytes)
        } catch {
            throw ServerTLSError(file: certificateFile, kind: .certificate, code: .notPEM)
        }
        let key: NIOSSLPrivateKey
        do {
            // No passphrase callback: an encrypted key fails here, as a server cannot ask for one.
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw ServerTLSError(file: keyFile, kind: .privateKey, code: .notPEM)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            // BoringSSL refuses a key whose public half is not the leaf certificate's.
            _ = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw ServerTLSError(file: keyFile, kind: .privateKey, code: .keyMismatch(certificateFile: certificateFile))
        } catch {
            throw ServerTLSError(file: certificateFile, kind: .certificate, code: .unusable("\(error)"))
        }
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.notValidAfter = Date(timeIntervalSince1970: TimeInterval(chain[0].notValidAfter))
        self.configuration = configuration
    }

    private static func read(_ path: String, as kind: ServerTLSError.Kind) throws(ServerTLSError) -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ServerTLSError(file: path, kind: kind, code: .missing)
        }
        guard !isDirectory.boolValue else { throw ServerTLSError(file: path, kind: kind, code: .directory) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServerTLSError(file: path, kind: kind, code: .unreadable)
        }
        return Array(data)
    }
}

/// Why a certificate or key file was refused, in the user's terms: the file, which of the two it
/// is, and what is wrong with it (never BoringSSL's error stack).
public struct ServerTLSError: Error, CustomStringConvertible, Sendable {
    /// Which of the two files.
    public enum Kind: Sendable {
        case certificate
        case privateKey
    }

    fileprivate enum Code: Sendable {
        case missing
        case directory
        case unreadable
        case notPEM
        case keyMismatch(certificateFile: String)
        case unusable(String)
    }

    /// The file's path as given.
    public let file: String
    /// Whether it is the certificate chain's file or the key's.
    public let kind: Kind
    fileprivate let code: Code

    /// What is wrong with ``file``, without naming it (`does not exist`).
    public var problem: String {
        switch code {
        case .missing: "does not exist"
        case .directory: "is a directory, not a file"
        case .unreadable: "cannot be read (check its permissions)"
        case .notPEM where kind == .certificate:
            "holds no PEM certificate (a block that begins `-----BEGIN CERTIFICATE-----`)"
        case .notPEM:
            "holds no PEM private key that can be used without a passphrase (a block that begins `-----BEGIN PRIVATE KEY-----`, `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----`)"
        case .keyMismatch(let certificateFile): "is not the private key of the certificate in \(certificateFile)"
        case .unusable(let reason): "cannot be used for TLS: \(reason)"
        }
    }

    /// `certificate file PATH does not exist`.
    public var description: String {
        "\(kind == .certificate ? "certificate" : "private key") file \(file) \(problem)"
    }
}
