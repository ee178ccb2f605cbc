fn main() {
    warmline_app::run()
}
