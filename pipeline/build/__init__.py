"""make.bash per target: bootstrap, plan, executors, builder image, artifact store, version stamp."""
