"""`python -m featureline.cli ...` runs the same CLI as the `featureline` script."""

from featureline.cli import main

if __name__ == "__main__":
    main()
