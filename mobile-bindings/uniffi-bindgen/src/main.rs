//! `uniffi-bindgen`, the same version as the scaffolding in `mobile-bindings`; generates the
//! Kotlin, Swift and Python bindings from the built library (library mode).

fn main() {
    uniffi::uniffi_bindgen_main()
}
