# Packages and man pages; included by the top-level Makefile.
#   make man   man pages from man/*.scd into build/man/ (scdoc)
#   make deb   build/packages/symbid_VERSION_all.deb (debhelper, dh-python, pybuild)
#   make rpm   build/packages/symbid-VERSION-1.noarch.rpm (rpmbuild, packaging/symbid.spec)
# DEB_VERSION=0.0.9 / RPM_VERSION=... build an older-numbered package from this tree
# (the upgrade test does). packaging-tools installs the build tools when root.
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DEB_VERSION ?= $(VERSION)
RPM_VERSION ?= $(VERSION)
PKG_OUT     := build/packages
DEB_SRC     := build/deb-src
WHEELS      := build/wheels
PACKAGING_TOOLS := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
	python3-wheel python3-dateutil lintian scdoc rpm

.PHONY: man deb rpm packaging-tools croniter-wheel

packaging-tools:
	@missing=$$(for p in $(PACKAGING_TOOLS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing the packaging tools: $$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
				>/dev/null || { apt-get update -q >/dev/null && \
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }; \
		else echo "make deb/rpm need: apt-get install $$missing (as root)"; exit 1; fi; \
	fi

man: packaging-tools
	@mkdir -p build/man
	@for page in man/*.scd; do scdoc < $$page > build/man/$$(basename $$page .scd) || exit 1; done
	@echo "man pages in build/man/"

# croniter is shipped privately (packaging/README.md): the version the tests run with.
croniter-wheel: $(STAMP)
	@v=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("croniter"))'); \
	ls $(WHEELS)/croniter-$$v-*.whl >/dev/null 2>&1 || \
		$(BIN)/pip download --quiet --no-deps --only-binary=:all: -d $(WHEELS) "croniter==$$v"

deb: packaging-tools croniter-wheel
	rm -rf $(DEB_SRC) && mkdir -p $(DEB_SRC) $(PKG_OUT)
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $(DEB_SRC)
	cp -r packaging/debian $(DEB_SRC)/debian
	for f in service socket sysusers tmpfiles; do cp units/symbid.$$f $(DEB_SRC)/debian/symbid.$$f; done
	mkdir -p $(DEB_SRC)/debian/vendor && cp $(WHEELS)/croniter-*.whl $(DEB_SRC)/debian/vendor/
	printf 'symbid (%s) unstable; urgency=medium\n\n  * symbid %s, built by make deb.\n\n -- symbid developers <symbid@symbid.dev>  %s\n' \
		"$(DEB_VERSION)" "$(DEB_VERSION)" "$$(date -R)" > $(DEB_SRC)/debian/changelog
	sed -i 's/^version = ".*"/version = "$(DEB_VERSION)"/' $(DEB_SRC)/pyproject.toml
	cd $(DEB_SRC) && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b --no-sign >../deb-build.log 2>&1 \
		|| { tail -40 ../deb-build.log; exit 1; }
	mv build/symbid_$(DEB_VERSION)_all.deb $(PKG_OUT)/
	rm -f build/symbid_$(DEB_VERSION)_*.buildinfo build/symbid_$(DEB_VERSION)_*.changes
	@echo "$(PKG_OUT)/symbid_$(DEB_VERSION)_all.deb"

RPM_TOP := $(CURDIR)/build/rpm
rpm: packaging-tools croniter-wheel
	rm -rf $(RPM_TOP) && mkdir -p $(RPM_TOP)/SOURCES $(PKG_OUT)
	git ls-files -z --cached --others --exclude-standard | \
		tar --null -T - --transform 's,^,symbid-$(RPM_VERSION)/,' -czf $(RPM_TOP)/SOURCES/symbid-$(RPM_VERSION).tar.gz
	cp $(WHEELS)/croniter-*.whl $(RPM_TOP)/SOURCES/croniter.whl
	cp units/symbid.sysusers $(RPM_TOP)/SOURCES/symbid.sysusers
	fallback=$$(rpm --eval '%{?pyproject_wheel:real}' | grep -q real || \
		echo "--load=packaging/rpm-fallback.macros"); \
	env PATH=/usr/sbin:/usr/bin:/sbin:/bin rpmbuild -bb --nodeps $$fallback \
		--define "_topdir $(RPM_TOP)" --define "pkg_version $(RPM_VERSION)" \
		packaging/symbid.spec >build/rpm-build.log 2>&1 || { tail -40 build/rpm-build.log; exit 1; }
	mv $(RPM_TOP)/RPMS/noarch/symbid-$(RPM_VERSION)-1*.noarch.rpm $(PKG_OUT)/
	@ls $(PKG_OUT)/symbid-$(RPM_VERSION)-1*.noarch.rpm
