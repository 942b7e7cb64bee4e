"""``mpay bench`` and the benchmark scripts: a tool beside the product, installed as the
``mpay_bench`` package; it adds the ``bench`` subcommand through the ``mpay.commands`` entry point."""
