"""Pipeline stages: each reads its inputs, calls the library and writes its outputs
atomically (`ncrepro.atomic`). One module per stage; `context.RunContext` is the chain
run record -> prepared data -> view -> normalizer -> model shared by training, features
and probes. The CLI (`python -m ncrepro <stage>`) is their only caller in the pipeline."""
