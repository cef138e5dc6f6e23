# The few verbs people type. `make test` needs only the Rust toolchain, Python 3 and the
# package registries: it makes .venv with the AWS API emulator itself.
CARGO ?= cargo

.PHONY: test serve build package bench bench-check first-run lint check-template fuzz fuzz-smoke browser fmt emulator clean model

## Run the whole test suite: lint, then every test against the AWS API emulator.
# The tests run zofhook against the emulator too: they build it with its feature `aws`.
test: lint check-template fuzz-smoke browser
	$(CARGO) build --workspace --bins --features zofhook/aws
	infra/with-emulator.sh infra/cargo-test.sh

## Headless Chromium and chromedriver for the console's browser tests (apt, when missing).
browser:
	infra/browser.sh

## Format and lint checks (CI runs these first).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features zofhook/aws -- -D warnings
	$(CARGO) clippy -p zofhook -p zofhook-core --all-targets -- -D warnings

## Each fuzz target for 10 s on its kept corpus (the long runs: make fuzz).
fuzz-smoke:
	infra/fuzz.sh 10

## The delivery protocol's model check, deeper than the bounded run in `make test`
## (RELIABILITY.md has the state counts): two deliveries, two workers, two faults and a
## replay; then three deliveries (two bodies), one worker, a fault and a replay.
model:
	$(CARGO) build --release -p zofhook-model
	target/release/zofhook-model AA 2 2 1 either
	target/release/zofhook-model AAB 1 1 1 either

## Each fuzz target for 5 minutes.
fuzz:
	infra/fuzz.sh 300 --keep

## sam validate --lint, cfn-lint and checkov on template.yaml.
check-template:
	infra/check-template.sh

build:
	$(CARGO) build --workspace --release --features zofhook/aws

## The whole pipeline locally on the embedded store (README's first command).
serve:
	$(CARGO) run --release -p zofhook -- serve

## Deployment packages with sam build (cargo lambda + Zig), x86_64 and arm64; then the Lambda
## tests on the x86_64 ones (arm64 cannot run here: it is built and measured).
package:
	infra/package.sh x86_64 arm64

## The BENCHMARKS targets as ratios, short (after make package): zipped packages <= 4 MB,
## verification <= 1.2x the floor, duplicates during a backlog >= 0.8x of idle.
bench-check:
	infra/bench-check.sh

## Every figure in BENCHMARKS.md, with its same-run baseline; rewrites its generated block.
bench:
	infra/bench.sh

## The README's first command on a fresh clone, timed to `listening` (BENCHMARKS.md).
first-run:
	infra/first-run.sh

fmt:
	$(CARGO) fmt --all

## A shell with the emulator running, for poking at it by hand.
emulator:
	infra/with-emulator.sh $${SHELL:-bash}

clean:
	$(CARGO) clean
	rm -rf .venv
