/// mimalloc instead of glibc's malloc: glibc keeps up to 8 arenas per core and returns little of
/// them to the OS, so the RSS of a busy server (tokio workers, SQLite threads) kept its peak;
/// mimalloc's per-thread heaps give freed memory back and are faster at serde's small allocations.
/// `calseta::allocator` sets how it holds memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    calseta::allocator::bound_memory();
    calseta::cli::main()
}
