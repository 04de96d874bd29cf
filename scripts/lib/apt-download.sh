# Sourced by the fetch scripts. apt_download DIR "DEB-LINE" PACKAGE...: downloads the packages'
# .deb files into DIR from the given archive, with apt's own sources list and state kept under DIR:
# nothing is installed and the system's apt configuration is left as it is.
apt_download() {
  local work="$1" source="$2"
  shift 2
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc"
  echo "$source" > "$work/etc/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$work/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root" -qq)
  apt-get "${opts[@]}" update >&2
  ( cd "$work" && apt-get "${opts[@]}" download "$@" >&2 )
}
