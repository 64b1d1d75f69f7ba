// A PlatformKeyWrapper over a P-256 key that never leaves the Secure Enclave: ECIES
// (.eciesEncryptionCofactorVariableIVX963SHA256AESGCM). `wrap` needs only the public key and shows
// no prompt; `unwrap` asks for Face ID, Touch ID or the passcode (.userPresence). With
// .biometryCurrentSet instead, enrolling new biometrics makes the key unusable for good; check
// how your OS versions report that and map it to `KeyInvalidated`.
//
// Part of the VaultMobile Swift package (Package.swift beside Sources/); built by
// scripts/package-ios.sh on a Mac. Not compiled in this repository's CI (no Swift toolchain).
import Foundation
import LocalAuthentication
import Security

/// The Secure Enclave as the vault's platform key wrapper. Create the key once with `generateKey(tag:)`
/// before `Vault.create(dir:passphrase:wrapper:)` or `addWrapperSlot`; `unwrap` blocks its
/// (background) thread while the system shows the prompt, so make vault calls off the main thread.
public final class SecureEnclaveWrapper: PlatformKeyWrapper {
    private let tag: Data
    private let prompt: String

    public init(tag: String, prompt: String = "Unlock your messages") {
        self.tag = Data(tag.utf8)
        self.prompt = prompt
    }

    private var algorithm: SecKeyAlgorithm { .eciesEncryptionCofactorVariableIVX963SHA256AESGCM }

    // Unlock tries only the slots with this label: never change it for an existing key.
    public func label() -> String { "ios-secure-enclave" }
    public func hardwareBacked() -> Bool { true }

    /// Creates the key, before `Vault.create` or `addWrapperSlot` uses it.
    public static func generateKey(tag: String) throws {
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            kCFAllocatorDefault, kSecAttrAccessibleWhenUnlockedThisDeviceOnly,
            [.privateKeyUsage, .userPresence], &error
        ) else { throw error!.takeRetainedValue() as Error }
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: Data(tag.utf8),
                kSecAttrAccessControl as String: access,
            ] as [String: Any],
        ]
        guard SecKeyCreateRandomKey(attributes as CFDictionary, &error) != nil else {
            throw error!.takeRetainedValue() as Error
        }
    }

    public static func deleteKey(tag: String) {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: Data(tag.utf8),
        ]
        SecItemDelete(query as CFDictionary)
    }

    public static func hasKey(tag: String) -> Bool {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: Data(tag.utf8),
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
        ]
        return SecItemCopyMatching(query as CFDictionary, nil) == errSecSuccess
    }

    public func wrap(plaintext: Data) throws -> Data {
        let key = try privateKey(context: nil)
        guard let publicKey = SecKeyCopyPublicKey(key) else {
            throw KeyWrapperError.Other(detail: "no public key")
        }
        var error: Unmanaged<CFError>?
        guard let wrapped = SecKeyCreateEncryptedData(publicKey, algorithm, plaintext as CFData, &error) else {
            throw Self.wrapperError(error)
        }
        return wrapped as Data
    }

    public func unwrap(wrapped: Data) throws -> Data {
        let context = LAContext()
        context.localizedReason = prompt
        let key = try privateKey(context: context)
        var error: Unmanaged<CFError>?
        // Blocks this (background) thread while the system shows the prompt.
        guard let plaintext = SecKeyCreateDecryptedData(key, algorithm, wrapped as CFData, &error) else {
            throw Self.wrapperError(error)
        }
        return plaintext as Data
    }

    private func privateKey(context: LAContext?) throws -> SecKey {
        var query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag,
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecReturnRef as String: true,
        ]
        if let context { query[kSecUseAuthenticationContext as String] = context }
        var item: CFTypeRef?
        switch SecItemCopyMatching(query as CFDictionary, &item) {
        case errSecSuccess: return item as! SecKey
        case errSecItemNotFound: throw KeyWrapperError.KeyInvalidated
        case errSecInteractionNotAllowed: throw KeyWrapperError.Unavailable
        case let status: throw KeyWrapperError.Other(detail: "keychain status \(status)")
        }
    }

    private static func wrapperError(_ error: Unmanaged<CFError>?) -> KeyWrapperError {
        guard let error = error?.takeRetainedValue() else { return .Other(detail: "no error") }
        let code = CFErrorGetCode(error)
        if (CFErrorGetDomain(error) as String) == LAErrorDomain {
            switch LAError.Code(rawValue: code) {
            case .userCancel, .appCancel, .systemCancel, .userFallback: return .Cancelled
            case .biometryLockout, .notInteractive: return .Unavailable
            default: return .Other(detail: "LAError \(code)")
            }
        }
        switch OSStatus(truncatingIfNeeded: code) {
        case errSecUserCanceled: return .Cancelled
        case errSecInteractionNotAllowed: return .Unavailable
        case errSecItemNotFound: return .KeyInvalidated
        // Check which codes your OS versions give for a blob this key cannot open.
        case errSecDecode, errSecParam: return .Rejected
        default: return .Other(detail: "Security error \(code)")
        }
    }
}
