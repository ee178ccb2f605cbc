//! Reads `tauri.conf.json` and `capabilities/`, embeds `../ui` and the icons, and
//! writes the ACL schemas to `gen/schemas/` (gitignored).

fn main() {
    tauri_build::build()
}
