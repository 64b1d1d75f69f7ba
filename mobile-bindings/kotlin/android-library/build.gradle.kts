// The Android library module that scripts/package-android.sh lays out in
// target/android/vault-mobile: the generated Kotlin, the SDK's hand-written Kotlin and
// jniLibs/<abi>/libvault_mobile.so. Include it in an app's Gradle build
// (settings.gradle.kts: include(":vault-mobile"); project(":vault-mobile").projectDir = file(...)).
// Not built in this repository's CI (no Android SDK); the same Kotlin is compiled there by Maven.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.vault.mobile"
    compileSdk = 35
    defaultConfig {
        minSdk = 30 // AndroidKeystoreWrapper: setUserAuthenticationParameters
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // The versions the Maven build (mobile-bindings/kotlin/pom.xml) compiles and tests with.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}
