# nc_limits (Hui, Belkin, Nakkiran 2022): figures 1-5 and the claims table, from the
# study table that the generic stages build (train -> features -> metrics, probes).


localrules:
    nc_limits_figure,
    nc_limits_table,


use rule figure as nc_limits_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/nc_limits.rst",
            category="nc_limits",
            labels={"study": "nc_limits", "figure": "{fig}"},
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/nc_limits_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="nc_limits",
    conda:
        CONDA_ENV


use rule table as nc_limits_table with:
    output:
        csv=report(
            res("tables/{study}/{table}.csv"),
            caption="../../report/nc_limits_claims.rst",
            category="nc_limits",
            labels={"study": "nc_limits", "table": "{table}"},
        ),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/nc_limits_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="nc_limits",
    conda:
        CONDA_ENV
