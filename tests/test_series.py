"""check-series: no patch may touch a file Debian's own patches changed."""
from __future__ import annotations

from pathlib import Path

from harness import series

# --- Debian's patched files ----------------------------------------------------------

PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
Subject: [PATCH] x

diff --git a/fs/namespace.c b/fs/namespace.c
--- a/fs/namespace.c
+++ b/fs/namespace.c
@@ -1 +1 @@
-a
+b
diff --git a/include/old.h b/include/new.h
similarity index 100%
rename from include/old.h
rename to include/new.h
diff --git a/samples/new.c b/samples/new.c
new file mode 100644
"""


def test_touched_files_sees_every_path() -> None:
    assert series.touched_files(PATCH) == {"fs/namespace.c", "include/old.h",
                                           "include/new.h", "samples/new.c"}


def test_a_patch_on_a_debian_file_is_named(tmp_path: Path) -> None:
    one, two = tmp_path / "0001-a.patch", tmp_path / "0002-b.patch"
    one.write_text(PATCH)
    two.write_text(PATCH.replace("fs/namespace.c", "fs/namei.c"))
    debian = ["fs/namei.c", "include/old.h", "kernel/fork.c"]
    assert series.debian_conflicts([one, two], debian) == [
        ("0001-a.patch", "include/old.h"), ("0002-b.patch", "fs/namei.c"),
        ("0002-b.patch", "include/old.h")]
