"""Releasing built toolchains: archives, checksums, manifest, provenance, signing, checking.

A release directory holds exactly one release and nothing else::

    <version>.<goos>-<goarch>.tar.gz     one per target (.zip for windows), copied byte for byte
                                         from the build's `make.bash -distpack` output
    <version>.src.tar.gz                 the patched source, also from distpack
    <archive>.sha256                     `<hex>  <archive>` for each archive (sha256sum format)
    <archive>.intoto.json                in-toto Statement v1 with SLSA provenance v1, per archive
    proxy/golang.org/toolchain/@v/       the golang.org/toolchain module proxy (GOTOOLCHAIN): per target
                                         v0.0.1-<version>.<goos>-<goarch>.{zip,mod,info} as distpack
                                         wrote them, and ``list``
    <version>.linux-<arch>.oci.tar       with --image: an OCI image layout (+ docker-load manifest) of
                                         the archive, toolchain at /usr/local/go
    manifest.json                        every input and output (see ``manifest``)
    SHA256SUMS                           every file above (proxy/ too); `sha256sum -c SHA256SUMS` checks them
    SHA256SUMS.sig                       optional `ssh-keygen -Y sign` signature of SHA256SUMS

Archives are never re-packed: distpack already writes them reproducibly (fixed mtimes from
VERSION's ``time`` line, fixed modes and owners, a sorted file set), so the published bytes are
the bytes the build made, and ``release verify --rebuild`` can compare them bit for bit.

Modules, in the order the data flows:

    inputs      the current HEAD's build artifacts in out/, their verify verdicts (``gate``)
    manifest    manifest.json from those inputs; merging per-target manifests (``gather``)
    proxy       the golang.org/toolchain module files, the GOPROXY ``list``, Go's dirhash of a zip
    oci         the OCI image tarball of a linux archive, written with the standard library
    provenance  one in-toto statement per archive, from the manifest alone
    signing     ssh-keygen -Y sign / verify
    publish     assembling a release directory atomically, refusing to mix two releases
    check       `release verify`: checksums, manifest, patches, provenance, signature
    compare     archive against archive, member by member
    rebuild     `release verify --rebuild`: checkout, apply, build, compare
    report      text / JSON / HTML of a check
    serve       `release serve`: the directory over HTTP, e.g. as GOPROXY=http://…/proxy
"""
