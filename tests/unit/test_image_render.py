"""Builder image without an engine: real jinja2 rendering of containers/builder.Dockerfile.j2, the
scratch rootfs assembled from this machine's static binaries, the content hash behind the tag,
and the errors a user can cause (bad template, bad base, missing static tools)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from pipeline.build import image
from pipeline.build.image import (
    REQUIRED_TOOLS,
    StaticTools,
    build_context,
    find_static_tools,
    is_static_elf,
    render_dockerfile,
    template_path,
)
from pipeline.build.ownership import build_user
from pipeline.config import BuildUser, load_options
from pipeline.errors import ConfigError, EnvironmentProblem

TEMPLATE = image.BUNDLED_TEMPLATE


def opts_for(tmp_path: Path, **env: str):
    environ = {"GOPATCH_CACHE_DIR": str(tmp_path / "cache"), **{f"GOPATCH_{k.upper()}": v for k, v in env.items()}}
    return load_options(None, env=environ, cwd=tmp_path)


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> StaticTools:
    try:
        return find_static_tools(tmp_path_factory.mktemp("cache"), fetch=False)
    except EnvironmentProblem as exc:
        pytest.skip(f"missing prerequisite: {exc.render()}")


def members(ctx) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(ctx.tar_bytes())) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_scratch_renders_a_copy_of_the_rootfs_and_no_run():
    text = render_dockerfile(TEMPLATE, base="scratch")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM scratch"
    assert "COPY rootfs/ /" in lines
    assert not any(line.startswith("RUN") for line in lines)  # nothing could run it in scratch
    assert 'LABEL gopatch.base="scratch"' in lines
    assert "{{" not in text and "{%" not in text


def test_other_bases_render_from_that_base_without_the_rootfs():
    text = render_dockerfile(TEMPLATE, base="golang:1.26")
    assert "FROM golang:1.26" in text.splitlines()
    assert "COPY rootfs" not in text
    assert render_dockerfile(TEMPLATE, base="golang:1.26") == text  # rendering is deterministic


@pytest.mark.parametrize("base", ["", "debian bookworm", "scratch\nRUN rm -rf /"])
def test_a_base_that_is_not_an_image_reference_is_a_config_error(base):
    with pytest.raises(ConfigError, match="docker] base") as info:
        render_dockerfile(TEMPLATE, base=base)
    assert info.value.exit_code == 2


def test_template_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text("FROM {{ base }}\n\n{% if scratch %}\nCOPY rootfs/ /\n")  # no endif
    with pytest.raises(ConfigError) as info:
        render_dockerfile(bad, base="scratch")
    assert f"{bad}:" in info.value.message


def test_template_with_an_unknown_variable_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text("FROM {{ bsae }}\n")
    with pytest.raises(ConfigError, match="bsae"):
        render_dockerfile(bad, base="scratch")


def test_default_template_falls_back_to_the_bundled_one_but_an_explicit_one_must_exist(tmp_path):
    assert template_path(opts_for(tmp_path)) == TEMPLATE  # tmp_path has no containers/
    own = tmp_path / "mine.j2"
    own.write_text("FROM {{ base }}\n")
    assert template_path(opts_for(tmp_path, docker_template=str(own))) == own
    with pytest.raises(ConfigError, match=r"missing\.j2"):
        template_path(opts_for(tmp_path, docker_template=str(tmp_path / "missing.j2")))


def test_is_static_elf(tmp_path, tools):
    assert is_static_elf(tools.bash) and is_static_elf(tools.busybox)
    dynamic = Path(shutil.which("python3") or "/usr/bin/python3").resolve()
    assert not is_static_elf(dynamic)
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert not is_static_elf(text)
    assert not is_static_elf(tmp_path / "absent")


def test_scratch_context_has_what_make_bash_needs(tmp_path, tools):
    ctx = build_context(opts_for(tmp_path), uid=1000, gid=1000, tools=tools)
    tar = members(ctx)
    assert tar["Dockerfile"].isfile()
    for tool in REQUIRED_TOOLS:
        assert f"rootfs/{tool}" in tar, f"{tool} missing from the builder rootfs"
    assert tar["rootfs/usr/bin/env"].linkname == "/bin/busybox"  # make.bash's shebang
    assert tar["rootfs/bin/sh"].linkname == "bash"
    assert tar["rootfs/bin/bash"].isfile() and tar["rootfs/bin/bash"].mode == 0o755
    assert tar["rootfs/tmp"].isdir() and tar["rootfs/tmp"].mode == 0o1777
    assert all(m.uid == 0 and m.mtime == 0 for m in tar.values())
    with tarfile.open(fileobj=io.BytesIO(ctx.tar_bytes())) as t:
        passwd = t.extractfile("rootfs/etc/passwd").read().decode()  # type: ignore[union-attr]
        group = t.extractfile("rootfs/etc/group").read().decode()  # type: ignore[union-attr]
    assert passwd.startswith("root:x:0:0:")
    assert "gopatch:x:1000:1000:gopatch:/tmp:/bin/bash" in passwd.splitlines()
    assert "gopatch:x:1000:" in group.splitlines()


def test_content_hash_and_tag_are_stable_and_follow_every_input(tmp_path, tools):
    opts = opts_for(tmp_path)
    a = build_context(opts, uid=1000, gid=1000, tools=tools)
    b = build_context(opts, uid=1000, gid=1000, tools=tools)
    assert a.content_sha256 == b.content_sha256 and a.tar_bytes() == b.tar_bytes()
    assert a.tag == f"gopatch-builder:{a.content_sha256[:12]}"

    # A different user, a changed binary, a changed template, a different base: new tags.
    other_user = build_context(opts, uid=1001, gid=1001, tools=tools)
    changed = tmp_path / "bash-static"
    changed.write_bytes(tools.bash.read_bytes() + b"\0")
    other_bash = build_context(opts, uid=1000, gid=1000, tools=StaticTools(bash=changed, busybox=tools.busybox))
    own = tmp_path / "own.j2"
    own.write_text(TEMPLATE.read_text() + "# local tweak\n")
    other_template = build_context(opts_for(tmp_path, docker_template=str(own)), uid=1000, gid=1000, tools=tools)
    debian = build_context(opts_for(tmp_path, docker_base="debian:bookworm-slim"))
    tags = {c.tag for c in (a, other_user, other_bash, other_template, debian)}
    assert len(tags) == 5
    assert debian.entries == () and "FROM debian:bookworm-slim" in debian.dockerfile
    assert a.dockerfile_sha256 == other_bash.dockerfile_sha256  # same Dockerfile, other context


def test_missing_static_tools_is_an_environment_problem_with_the_install_hint(tmp_path):
    nowhere = [tmp_path / "no-bash"]
    with pytest.raises(EnvironmentProblem) as info:
        # fetch allowed, but no apt-get on this PATH: nothing to fetch with.
        find_static_tools(tmp_path / "cache", bash_candidates=nowhere, busybox_candidates=nowhere,
                          env={"PATH": str(tmp_path)})
    assert info.value.exit_code == 3
    assert "apt-get install -y bash-static busybox-static" in info.value.render()


def test_a_dynamic_busybox_is_not_accepted(tmp_path, tools):
    dynamic = Path(shutil.which("python3") or "/usr/bin/python3").resolve()
    with pytest.raises(EnvironmentProblem, match="static busybox"):
        find_static_tools(tmp_path / "cache", fetch=False, bash_candidates=[tools.bash],
                          busybox_candidates=[dynamic])


def test_tools_unpacked_into_the_cache_are_found(tmp_path, tools):
    # What `apt-get download` + `dpkg-deb -x` leave behind, without running them.
    root = tmp_path / "cache" / "static-tools" / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(tools.bash, root / "bin" / "bash-static")
    shutil.copy2(tools.busybox, root / "bin" / "busybox")
    found = find_static_tools(tmp_path / "cache", fetch=False, bash_candidates=[], busybox_candidates=[])
    assert found == StaticTools(bash=root / "bin" / "bash-static", busybox=root / "bin" / "busybox")


def test_the_image_names_the_build_user_never_root(tmp_path, tools):
    # By default the image is made for the user the build runs as: the caller, or 65532 for root.
    def passwd_of(ctx) -> list[str]:
        with tarfile.open(fileobj=io.BytesIO(ctx.tar_bytes())) as t:
            return t.extractfile("rootfs/etc/passwd").read().decode().splitlines()  # type: ignore[union-attr]

    uid, gid = build_user(BuildUser())
    assert uid != 0
    assert f"gopatch:x:{uid}:{gid}:gopatch:/tmp:/bin/bash" in passwd_of(build_context(opts_for(tmp_path), tools=tools))
    if uid == gid == 65532:  # a root caller may name another user: the image names that one
        configured = build_context(opts_for(tmp_path, docker_user="2000:3000"), tools=tools)
        assert "gopatch:x:2000:3000:gopatch:/tmp:/bin/bash" in passwd_of(configured)
