"""What tests and benchmarks share: polling, request and result factories, stack set-up,
test-only workflows.

Test modules import from here, never from each other (nor from ``conftest``). Keep this
package free of heavy imports at the top: Temporal's workflow sandbox imports
:mod:`tests.helpers.stage_workflows` and with it this package.
"""
