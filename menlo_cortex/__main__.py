from menlo_cortex.cli import main

raise SystemExit(main())
