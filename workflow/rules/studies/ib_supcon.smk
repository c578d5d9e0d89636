# ib_supcon (Wang, Palmer): pairs of SupCon encoders trained by the generic stages; the
# pair analysis (CCA, rank transform, Gaussian IB, ETF signatures, zero-shot transfer) of
# each pair is this study's own stage, one job per pair (model 1's probe "ib_pair").
from ncrepro.studies.ib_supcon.runs import RuleSupport as IbSupconRules

IB_SUPCON = IbSupconRules(config, RUN_SHEET, RUN_SPECS, res)


localrules:
    ib_supcon_figure,
    ib_supcon_table,


rule ib_supcon_pair:
    input:
        unpack(lambda wildcards: IB_SUPCON.pair_files(wildcards.run)),
    output:
        table=res("probes/ib_supcon/{run}/ib_pair.parquet"),
        representations=temp(directory(res("representations/ib_supcon/{run}"))),
    log:
        res("logs/probes/ib_supcon/{run}/ib_pair.log"),
    benchmark:
        res("benchmarks/ib_supcon_pair/{run}.tsv")
    wildcard_constraints:
        run=IB_SUPCON.pair_runs() or NEVER,
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("probes", "gpu", 1),
        runtime=IB_SUPCON.resource("runtime", rule_resources("probes", "runtime", 20)),
        mem_mb=IB_SUPCON.resource("mem_mb", rule_resources("probes", "mem_mb", 4000)),
    params:
        inputs=lambda wildcards, input: IB_SUPCON.stage_arguments(input),
        code_version=(
            study_stage_code("ib_supcon", "pair") if IB_SUPCON.enabled() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m ncrepro study-stage --name pair "
        "--sheet {input.sheet} --inputs {params.inputs} --out {output.table} > {log} 2>&1"


use rule figure as ib_supcon_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/ib_supcon.rst",
            category="ib_supcon",
            labels={"study": "ib_supcon", "figure": "{fig}"},
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/ib_supcon_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="ib_supcon",
    conda:
        CONDA_ENV


use rule table as ib_supcon_table with:
    output:
        csv=report(
            res("tables/{study}/{table}.csv"),
            caption="../../report/ib_supcon_table.rst",
            category="ib_supcon",
            labels={"study": "ib_supcon", "table": "{table}"},
        ),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/ib_supcon_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="ib_supcon",
    conda:
        CONDA_ENV
