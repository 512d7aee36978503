{{ config(contract={'enforced': true}) }}
{#- Category-to-category step counts of the browsing Markov chain (see
    int_category_transitions_counted). Input of the next-category model in ml/analysis. -#}

select
    from_category,
    to_category,
    n_transitions,
    n_sessions,
    n_users
from {{ ref('int_category_transitions_counted') }}
