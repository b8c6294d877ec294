# SPDX-License-Identifier: GPL-2.0
"""Checkers that run inside the test VM and report KTAP."""
