package uniffi.vault_mobile

import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyInfo
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import android.security.keystore.UserNotAuthenticatedException
import java.security.GeneralSecurityException
import java.security.KeyStore
import java.security.ProviderException
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.SecretKeyFactory
import javax.crypto.spec.GCMParameterSpec

/**
 * A [PlatformKeyWrapper] over an AES-256-GCM key in the Android Keystore: in StrongBox where the
 * device has one (API 28+), in the TEE otherwise. Needs API 30 (`setUserAuthenticationParameters`).
 *
 * Create the key once with [generateKey] before `Vault.create(dir, passphrase, wrapper)` or
 * `addWrapperSlot`, then unlock with `Vault.unlockWithWrapper(dir, wrapper)`. The vault calls
 * [wrap] and [unwrap] on the thread of the vault call (a worker thread for the `suspend` calls):
 * make vault calls off the main thread, so that [authenticator] can wait there while the main
 * thread shows the prompt.
 *
 * Errors reach the app as the vault's exception cases:
 * - the key is gone (deleted, app data cleared) or permanently invalidated (biometrics
 *   re-enrolled, screen lock removed): `VaultException.KeyInvalidated` (unlock another way, then
 *   `rewrapSlot` with a new key);
 * - the user cancelled the prompt ([UserAuthenticator.authenticate] returned false):
 *   `VaultException.Cancelled`;
 * - the key needs an authentication that has not happened (no [authenticator], or its validity
 *   window has passed) or the keystore is unusable now: `VaultException.RetryLater`;
 * - a blob that is not this key's: the unlock tries the next slot, `WrongPassword` if none opens.
 *
 * Stored form: the 12-byte IV the keystore chose, then the ciphertext and its 16-byte tag.
 *
 * @param alias the Keystore alias of the key.
 * @param label the slot label (unlock tries only slots with this label): never change it for an
 *   existing key.
 * @param authenticator shows the user-authentication prompt for keys made with
 *   [UserAuthentication.PerUse] (or a [UserAuthentication.WithinSeconds] window that has passed).
 */
class AndroidKeystoreWrapper(
    private val alias: String,
    private val label: String = DEFAULT_LABEL,
    private val authenticator: UserAuthenticator? = null,
) : PlatformKeyWrapper {

    override fun label(): String = label

    /** Whether the key is in StrongBox or the TEE. Never throws: a missing key reports false. */
    override fun hardwareBacked(): Boolean = try {
        val key = loadKey()
        val info = SecretKeyFactory.getInstance(key.algorithm, KEYSTORE).getKeySpec(key, KeyInfo::class.java) as KeyInfo
        if (Build.VERSION.SDK_INT >= 31) {
            info.securityLevel == KeyProperties.SECURITY_LEVEL_STRONGBOX ||
                info.securityLevel == KeyProperties.SECURITY_LEVEL_TRUSTED_ENVIRONMENT
        } else {
            @Suppress("DEPRECATION")
            info.isInsideSecureHardware
        }
    } catch (e: Exception) {
        false
    }

    override fun wrap(plaintext: ByteArray): ByteArray {
        try {
            val cipher = authenticated(Cipher.getInstance(TRANSFORMATION)) { it.init(Cipher.ENCRYPT_MODE, loadKey()) }
            return cipher.iv + cipher.doFinal(plaintext) // the keystore picks a random IV
        } catch (e: Exception) {
            throw wrapperError(e)
        } finally {
            plaintext.fill(0)
        }
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        if (wrapped.size < IV_LEN + TAG_LEN) throw KeyWrapperException.Rejected()
        try {
            val cipher = authenticated(Cipher.getInstance(TRANSFORMATION)) {
                it.init(Cipher.DECRYPT_MODE, loadKey(), GCMParameterSpec(TAG_LEN * 8, wrapped, 0, IV_LEN))
            }
            return cipher.doFinal(wrapped, IV_LEN, wrapped.size - IV_LEN)
        } catch (e: Exception) {
            throw wrapperError(e)
        }
    }

    /**
     * Initialises [cipher] with [init]; with an [authenticator], lets the user authenticate it:
     * a per-use key is authenticated as the prompt's crypto object after `init`, a key whose
     * time window has passed fails `init`, is authenticated without one and initialised again.
     */
    private fun authenticated(cipher: Cipher, init: (Cipher) -> Unit): Cipher {
        val prompt = authenticator ?: return cipher.also(init)
        try {
            init(cipher)
        } catch (e: UserNotAuthenticatedException) {
            if (!prompt.authenticate(null)) throw KeyWrapperException.Cancelled()
            return cipher.also(init)
        }
        if (requiresPerUseAuthentication() && !prompt.authenticate(cipher)) throw KeyWrapperException.Cancelled()
        return cipher
    }

    private fun requiresPerUseAuthentication(): Boolean = try {
        val key = loadKey()
        val info = SecretKeyFactory.getInstance(key.algorithm, KEYSTORE).getKeySpec(key, KeyInfo::class.java) as KeyInfo
        info.isUserAuthenticationRequired && info.userAuthenticationValidityDurationSeconds <= 0
    } catch (e: GeneralSecurityException) {
        false
    }

    private fun loadKey(): SecretKey =
        keyStore().getKey(alias, null) as? SecretKey ?: throw KeyWrapperException.KeyInvalidated()

    /** Doesn't print key details. */
    override fun toString(): String = "AndroidKeystoreWrapper(label=$label)"

    /** When the key may be used. */
    sealed interface UserAuthentication {
        /** No user authentication: usable whenever the app runs. */
        data object None : UserAuthentication

        /** A strong biometric or the device credential for each use ([authenticator] prompts). */
        data object PerUse : UserAuthentication

        /** Usable for [seconds] after the user authenticated with a strong biometric or the device credential. */
        data class WithinSeconds(val seconds: Int) : UserAuthentication {
            init {
                require(seconds > 0) { "seconds is positive; use PerUse for a prompt on every use" }
            }
        }
    }

    /**
     * Shows the user-authentication prompt (a `BiometricPrompt` with the authenticators
     * `BIOMETRIC_STRONG or DEVICE_CREDENTIAL`) and waits, on the vault's calling thread, for the
     * user. Called never on the main thread by the vault; post the prompt to it.
     */
    fun interface UserAuthenticator {
        /**
         * Authenticates [cipher] as the prompt's `BiometricPrompt.CryptoObject` (a per-use key),
         * or without a crypto object when [cipher] is null (a key with a validity window).
         * Returns true once authenticated, false when the user cancelled or failed.
         */
        fun authenticate(cipher: Cipher?): Boolean
    }

    companion object {
        /** The default slot label. */
        const val DEFAULT_LABEL: String = "android-keystore"

        private const val KEYSTORE = "AndroidKeyStore"
        private const val TRANSFORMATION = "AES/GCM/NoPadding"
        private const val IV_LEN = 12
        private const val TAG_LEN = 16

        /**
         * Creates the key under [alias] (replacing one of that alias): in StrongBox when
         * [preferStrongBox] and the device has one, else in the TEE. Returns whether it is in
         * StrongBox.
         */
        fun generateKey(
            alias: String,
            authentication: UserAuthentication = UserAuthentication.None,
            preferStrongBox: Boolean = true,
            unlockedDeviceRequired: Boolean = false,
        ): Boolean {
            if (preferStrongBox && Build.VERSION.SDK_INT >= 28) {
                try {
                    generate(alias, authentication, strongBox = true, unlockedDeviceRequired)
                    return true
                } catch (e: StrongBoxUnavailableException) {
                    // No StrongBox on this device: the TEE below.
                } catch (e: ProviderException) {
                    // Some devices report a missing StrongBox this way.
                }
            }
            generate(alias, authentication, strongBox = false, unlockedDeviceRequired)
            return false
        }

        /** Deletes the key: the slots it wraps can no longer be opened with it. */
        fun deleteKey(alias: String) = keyStore().deleteEntry(alias)

        /** Whether a key exists under [alias]. */
        fun hasKey(alias: String): Boolean = keyStore().containsAlias(alias)

        private fun generate(
            alias: String,
            authentication: UserAuthentication,
            strongBox: Boolean,
            unlockedDeviceRequired: Boolean,
        ) {
            val builder = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .setRandomizedEncryptionRequired(true)
            if (Build.VERSION.SDK_INT >= 28) {
                builder.setIsStrongBoxBacked(strongBox)
                builder.setUnlockedDeviceRequired(unlockedDeviceRequired)
            }
            val authenticators = KeyProperties.AUTH_BIOMETRIC_STRONG or KeyProperties.AUTH_DEVICE_CREDENTIAL
            when (authentication) {
                UserAuthentication.None -> Unit
                UserAuthentication.PerUse -> builder.setUserAuthenticationRequired(true)
                    .setUserAuthenticationParameters(0, authenticators)
                    .setInvalidatedByBiometricEnrollment(true)
                is UserAuthentication.WithinSeconds -> builder.setUserAuthenticationRequired(true)
                    .setUserAuthenticationParameters(authentication.seconds, authenticators)
                    .setInvalidatedByBiometricEnrollment(true)
            }
            KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE).apply { init(builder.build()) }.generateKey()
        }

        private fun keyStore(): KeyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
    }
}

/** The vault's wrapper error for a keystore failure; the exception's own text is not kept. */
private fun wrapperError(e: Exception): KeyWrapperException = when (e) {
    is KeyWrapperException -> e
    is KeyPermanentlyInvalidatedException -> KeyWrapperException.KeyInvalidated()
    is UserNotAuthenticatedException -> KeyWrapperException.Unavailable() // authenticate, then retry
    is AEADBadTagException -> KeyWrapperException.Rejected() // not this key's blob
    // A per-use key used without its prompt fails in doFinal with the keystore's
    // "not authenticated" cause.
    is GeneralSecurityException -> if (e.cause is UserNotAuthenticatedException || e.cause?.cause is UserNotAuthenticatedException) {
        KeyWrapperException.Unavailable()
    } else {
        KeyWrapperException.Other("keystore operation failed: ${e.javaClass.simpleName}")
    }
    else -> KeyWrapperException.Other("keystore operation failed: ${e.javaClass.simpleName}")
}
