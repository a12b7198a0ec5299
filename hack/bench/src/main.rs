// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `make bench` (`cargo bench --bench machines`); the benchmark is the
//! library's (src/lib.rs).

fn main() -> std::process::ExitCode {
    mcm_bench::main()
}
