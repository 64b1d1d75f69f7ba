package uniffi.vault_mobile

import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.StandardOpenOption
import java.nio.file.attribute.PosixFilePermissions
import java.security.GeneralSecurityException
import java.security.SecureRandom
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec

/**
 * A software [PlatformKeyWrapper] for JVM apps, desktop tools and tests: AES-256-GCM through
 * `javax.crypto` under a key held in this process (and, with [loadOrCreate], in a key file).
 *
 * It is **not hardware-backed** ([hardwareBacked] is false, and the vault's slot list says so):
 * whoever can read the key file can open the slot. On Android use `AndroidKeystoreWrapper`
 * (module `vault-sdk-android`) instead.
 *
 * Stored form of a wrapped key: version byte `1`, a random 12-byte IV, then the ciphertext and
 * its 16-byte tag; the label is bound as associated data, so a blob made under another label
 * is rejected.
 */
class JvmKeyWrapper private constructor(
    key: ByteArray,
    private val label: String,
) : PlatformKeyWrapper {
    private val key = SecretKeySpec(key, "AES")

    init {
        require(key.size == KEY_LEN) { "a JvmKeyWrapper key is $KEY_LEN bytes" }
        require(label.isNotEmpty() && label.toByteArray().size <= 64) { "the label is 1 to 64 bytes" }
        key.fill(0)
    }

    override fun label(): String = label

    override fun hardwareBacked(): Boolean = false

    override fun wrap(plaintext: ByteArray): ByteArray {
        try {
            val iv = ByteArray(IV_LEN).also { random.nextBytes(it) }
            val cipher = Cipher.getInstance(TRANSFORMATION)
            cipher.init(Cipher.ENCRYPT_MODE, key, GCMParameterSpec(TAG_LEN * 8, iv))
            cipher.updateAAD(label.toByteArray())
            return byteArrayOf(VERSION) + iv + cipher.doFinal(plaintext)
        } catch (e: GeneralSecurityException) {
            throw KeyWrapperException.Other("software AES-GCM failed: ${e.javaClass.simpleName}")
        } finally {
            plaintext.fill(0)
        }
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        if (wrapped.size < 1 + IV_LEN + TAG_LEN || wrapped[0] != VERSION) throw KeyWrapperException.Rejected()
        try {
            val cipher = Cipher.getInstance(TRANSFORMATION)
            cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_LEN * 8, wrapped, 1, IV_LEN))
            cipher.updateAAD(label.toByteArray())
            return cipher.doFinal(wrapped, 1 + IV_LEN, wrapped.size - 1 - IV_LEN)
        } catch (e: AEADBadTagException) {
            throw KeyWrapperException.Rejected() // not this key's blob, or altered
        } catch (e: GeneralSecurityException) {
            throw KeyWrapperException.Other("software AES-GCM failed: ${e.javaClass.simpleName}")
        }
    }

    /** Doesn't print the key. */
    override fun toString(): String = "JvmKeyWrapper(label=$label, not hardware-backed)"

    companion object {
        /** The default label; unlock tries only the slots whose label matches. */
        const val DEFAULT_LABEL: String = "jvm-software"

        private const val TRANSFORMATION = "AES/GCM/NoPadding"
        private const val KEY_LEN = 32
        private const val IV_LEN = 12
        private const val TAG_LEN = 16
        private const val VERSION: Byte = 1
        private val random = SecureRandom()

        /** A wrapper under a new random key that lives only in this process. */
        fun generate(label: String = DEFAULT_LABEL): JvmKeyWrapper =
            JvmKeyWrapper(ByteArray(KEY_LEN).also { random.nextBytes(it) }, label)

        /** A wrapper under the 32-byte [key] (copied; the caller's array is left as it is). */
        fun fromKey(key: ByteArray, label: String = DEFAULT_LABEL): JvmKeyWrapper = JvmKeyWrapper(key.copyOf(), label)

        /**
         * A wrapper under the key in the file at [path], created (32 random bytes, readable by the
         * owner only where the file system has POSIX permissions) when the file does not exist.
         * A file of another size is refused with [IllegalArgumentException].
         */
        fun loadOrCreate(path: Path, label: String = DEFAULT_LABEL): JvmKeyWrapper {
            if (!Files.exists(path)) {
                val key = ByteArray(KEY_LEN).also { random.nextBytes(it) }
                try {
                    // Owner-only from the start where the file system has POSIX permissions.
                    try {
                        Files.createFile(path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))
                    } catch (e: UnsupportedOperationException) {
                        Files.createFile(path)
                    }
                    Files.newOutputStream(path, StandardOpenOption.WRITE, StandardOpenOption.SYNC).use { it.write(key) }
                } finally {
                    key.fill(0)
                }
            }
            val key = Files.readAllBytes(path)
            require(key.size == KEY_LEN) { "the key file is not a JvmKeyWrapper key ($KEY_LEN bytes)" }
            return JvmKeyWrapper(key, label)
        }
    }
}
