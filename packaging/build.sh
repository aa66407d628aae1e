#!/usr/bin/env bash
# Builds rowtrail's packages from a checkout into target/packaging/:
#   - a .deb (cargo-deb; its metadata is [package.metadata.deb] in Cargo.toml), and
#   - a tarball with the same files in a prefix tree (bin/, share/) for any Linux desktop:
#       tar -xzf rowtrail-VERSION-ARCH-linux.tar.gz -C ~/.local --strip-components=1
#
#   packaging/build.sh           validate the desktop entry and metainfo, build the release binary,
#                                the .deb and the tarball
#   packaging/build.sh validate  only validate the desktop entry and the AppStream metainfo
#   packaging/build.sh icons     regenerate packaging/icons/ from assets/rowtrail.svg (rsvg-convert)
#
# Needs: cargo-deb (cargo install cargo-deb --locked), dpkg-dev, desktop-file-utils; appstream for
# the metainfo check when available.
set -euo pipefail
cd "$(dirname "$0")/.."

id=io.github.rowtrail.rowtrail
sizes=(16 24 32 48 64 128 256 512)
out=target/packaging
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(uname -m)

icons() {
  for size in "${sizes[@]}"; do
    mkdir -p "packaging/icons/${size}x${size}"
    rsvg-convert -w "$size" -h "$size" assets/rowtrail.svg -o "packaging/icons/${size}x${size}/$id.png"
  done
  echo "icons written to packaging/icons/"
}

validate() {
  desktop-file-validate "packaging/$id.desktop"
  if command -v appstreamcli >/dev/null; then
    appstreamcli validate --no-net "packaging/$id.metainfo.xml"
  else
    echo "appstreamcli not found (apt-get install appstream): the metainfo was not validated" >&2
  fi
  for size in "${sizes[@]}"; do
    test -f "packaging/icons/${size}x${size}/$id.png" || {
      echo "packaging/icons/${size}x${size}/$id.png is missing: run packaging/build.sh icons" >&2
      exit 1
    }
  done
  echo "desktop entry, metainfo and icons are valid"
}

deb() {
  mkdir -p "$out"
  cargo deb --no-build --output "$out/"
}

tarball() {
  local name="rowtrail-$version-$arch-linux"
  local root="$out/$name"
  rm -rf "$root"
  install -D -m 0755 target/release/rowtrail "$root/bin/rowtrail"
  strip "$root/bin/rowtrail"
  install -D -m 0644 "packaging/$id.desktop" "$root/share/applications/$id.desktop"
  install -D -m 0644 "packaging/$id.metainfo.xml" "$root/share/metainfo/$id.metainfo.xml"
  install -D -m 0644 assets/rowtrail.svg "$root/share/icons/hicolor/scalable/apps/$id.svg"
  for size in "${sizes[@]}"; do
    install -D -m 0644 "packaging/icons/${size}x${size}/$id.png" \
      "$root/share/icons/hicolor/${size}x${size}/apps/$id.png"
  done
  install -D -m 0644 README.md "$root/share/doc/rowtrail/README.md"
  install -D -m 0644 "packaging/rowtrail-capture@.service" "$root/share/doc/rowtrail/rowtrail-capture@.service"
  tar -C "$out" -czf "$out/$name.tar.gz" "$name"
  rm -rf "$root"
  echo "$out/$name.tar.gz"
}

case "${1:-all}" in
  icons) icons ;;
  validate) validate ;;
  all)
    validate
    cargo build --release --locked --bin rowtrail
    deb
    tarball
    ls -l "$out"
    ;;
  *) echo "usage: packaging/build.sh [all|validate|icons]" >&2; exit 2 ;;
esac
