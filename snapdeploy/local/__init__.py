"""snapdeploy on one machine: each service as a process, the vCenter simulator, and the broker
users a local stack runs with (the demo, the benchmarks and the tests share these)."""
